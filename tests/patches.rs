//! Signed patches: upload, publish, entitled download verified by the stock minisign
//! tool, visibility by entitlement and state, HTTP ranges and validators, refused
//! uploads that leave nothing behind; on local storage and on an S3-compatible server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::patching::{download, draft, file_bytes, fixture, upload_file, walk, Fixture};
use support::{error_code, minisign_verifies, S3Server, TestApp};

/// Uploads and publishes a patch with `bytes`; returns its id.
async fn published_patch(app: &TestApp, f: &Fixture, bytes: Vec<u8>) -> String {
    let id = draft(app, f, Some(patchwarden::secrets::sha256_hex(&bytes))).await;
    let (status, body) = upload_file(app, &f.vendor.token, &id, bytes).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "published");
    id
}

async fn publish_download_verify(app: &TestApp) {
    let f = fixture(app).await;
    let bytes = file_bytes(3 * 1024 * 1024 + 17);
    let sha256 = patchwarden::secrets::sha256_hex(&bytes);
    let id = published_patch(app, &f, bytes.clone()).await;

    let response = download(app, &f.acme.admin.token, &id, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["etag"], format!("\"{sha256}\"").as_str());
    assert_eq!(response.headers()["content-length"], bytes.len().to_string().as_str());
    assert_eq!(
        response.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"screenos-6.3.0r21-ssg500.bin\""
    );
    let body = response.bytes().await.unwrap();
    assert!(body.as_ref() == bytes.as_slice(), "the downloaded file differs");

    let (_, meta) = app.get(&format!("/api/v1/patches/{id}"), &f.acme.admin.token).await;
    assert_eq!(meta["sha256"], sha256.as_str());
    assert_eq!(meta["size"], bytes.len());
    assert_eq!(meta["fixes"], json!([f.advisory]));
    let signature = app
        .client
        .get(app.url(&format!("/api/v1/patches/{id}/minisig")))
        .bearer_auth(&f.acme.admin.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(signature, meta["signature"].as_str().unwrap());
    let key = app
        .get_text(&format!("/api/v1/keys/{}", meta["key_id"].as_str().unwrap()))
        .await
        .1;
    let verified = patchwarden::signing::verify(&key, std::io::Cursor::new(&bytes), &signature).unwrap();
    for part in [
        "product=screenos",
        "version=6.3.0r21",
        "platform=ssg-500",
        &format!("sha256={sha256}"),
        &format!("advisories={}", f.advisory),
    ] {
        assert!(
            verified.trusted_comment.contains(part),
            "trusted comment lacks {part}: {}",
            verified.trusted_comment
        );
    }
    {
        let (ok, output) = minisign_verifies(&bytes, &signature, &key);
        assert!(ok, "minisign refused the patch: {output}");
        assert!(output.contains(&format!("sha256={sha256}")), "{output}");
        let mut tampered = bytes.clone();
        tampered[1000] ^= 0x80;
        assert!(
            !minisign_verifies(&tampered, &signature, &key).0,
            "a tampered patch verified"
        );
    }

    // Ranges at the start, middle and end; suffix; unsatisfiable; validators; HEAD.
    let size = bytes.len();
    for (range, start, end) in [
        ("bytes=0-99", 0, 99),
        ("bytes=1048576-1048675", 1_048_576, 1_048_675),
        (&format!("bytes={}-", size - 10) as &str, size - 10, size - 1),
        ("bytes=-25", size - 25, size - 1),
    ] {
        let response = download(app, &f.acme.admin.token, &id, &[("range", range)]).await;
        assert_eq!(response.status(), 206, "{range}");
        assert_eq!(
            response.headers()["content-range"],
            format!("bytes {start}-{end}/{size}").as_str(),
            "{range}"
        );
        let body = response.bytes().await.unwrap();
        assert!(body.as_ref() == &bytes[start..=end], "{range}: wrong bytes");
    }
    let response = download(app, &f.acme.admin.token, &id, &[("range", &format!("bytes={size}-"))]).await;
    assert_eq!(response.status(), 416);
    assert_eq!(response.headers()["content-range"], format!("bytes */{size}").as_str());
    let etag = format!("\"{sha256}\"");
    let response = download(app, &f.acme.admin.token, &id, &[("if-none-match", &etag)]).await;
    assert_eq!(response.status(), 304);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = download(
        app,
        &f.acme.admin.token,
        &id,
        &[("range", "bytes=0-9"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(response.status(), 206);
    let response = download(
        app,
        &f.acme.admin.token,
        &id,
        &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(response.status(), 200, "a stale If-Range must give the whole file");
    assert_eq!(response.bytes().await.unwrap().len(), size);
    let head = app
        .client
        .head(app.url(&format!("/api/v1/patches/{id}/download")))
        .bearer_auth(&f.acme.admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], size.to_string().as_str());
    assert_eq!(head.headers()["etag"], etag.as_str());
}

#[actix_web::test]
async fn a_patch_is_uploaded_published_downloaded_and_verified() {
    for app in TestApp::each().await {
        publish_download_verify(&app).await;
        let stored: Vec<_> = walk(&app.data_dir.path().join("patches/sha256"));
        assert_eq!(stored.len(), 1, "one content-addressed file: {stored:?}");
    }
}

#[actix_web::test]
#[ignore = "needs moto_server (pip install 'moto[server]'); run with -- --include-ignored, as CI does"]
async fn the_s3_backend_uploads_publishes_and_serves_the_same_way() {
    let s3 = S3Server::start().await;
    let settings = s3.settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for app in TestApp::each_with(&settings).await {
        assert_eq!(app.state.storage.backend_name(), "s3");
        publish_download_verify(&app).await;
        assert!(
            walk(&app.data_dir.path().join("patches")).is_empty(),
            "S3 mode wrote local files"
        );
    }
}

#[actix_web::test]
async fn entitlement_and_state_decide_who_sees_what() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let id = published_patch(&app, &f, file_bytes(4096)).await;
        let draft_id = draft(&app, &f, None).await;

        for path in [
            format!("/api/v1/patches/{id}"),
            format!("/api/v1/patches/{id}/minisig"),
            format!("/api/v1/patches/{id}/download"),
        ] {
            let (status, body) = app.get(&path, &f.globex.admin.token).await;
            assert_eq!(
                (status, error_code(&body)),
                (404, "not_found"),
                "{path} for a customer without entitlement"
            );
        }
        for path in [
            format!("/api/v1/patches/{draft_id}"),
            format!("/api/v1/patches/{draft_id}/download"),
        ] {
            let (status, _) = app.get(&path, &f.acme.admin.token).await;
            assert_eq!(status, 404, "{path}: a draft is visible to a customer");
        }
        let (_, listed) = app.get("/api/v1/patches", &f.acme.admin.token).await;
        assert_eq!(listed.as_array().unwrap().len(), 1);
        let (_, listed) = app.get("/api/v1/patches", &f.globex.admin.token).await;
        assert_eq!(listed, json!([]));
        let (_, listed) = app.get("/api/v1/patches", &f.vendor.token).await;
        assert_eq!(listed.as_array().unwrap().len(), 2, "the vendor sees drafts too");
        let (status, _) = app.get_text(&format!("/api/v1/patches/{id}/download")).await;
        assert_eq!(status, 401);

        // Entitlements: the customer sees its own, not another's.
        let (status, own) = app
            .get("/api/v1/customers/acme/entitlements", &f.acme.admin.token)
            .await;
        assert_eq!((status, own["products"].clone()), (200, json!(["screenos"])));
        let (status, _) = app
            .get("/api/v1/customers/acme/entitlements", &f.globex.admin.token)
            .await;
        assert_eq!(status, 404);

        // Yanked: still listed with its reason, but the file is gone.
        let (status, body) = app
            .post(
                &format!("/api/v1/patches/{id}/yank"),
                &f.vendor.token,
                json!({"reason": "Bricks SSG-500 units with 1 GB RAM"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let (status, meta) = app.get(&format!("/api/v1/patches/{id}"), &f.acme.admin.token).await;
        assert_eq!(status, 200);
        assert_eq!(meta["state"], "yanked");
        assert_eq!(meta["yank_reason"], "Bricks SSG-500 units with 1 GB RAM");
        let (status, body) = app
            .get(&format!("/api/v1/patches/{id}/download"), &f.acme.admin.token)
            .await;
        assert_eq!((status, error_code(&body)), (410, "gone"));
        assert!(body["error"]["message"].as_str().unwrap().contains("Bricks"));
        let (status, body) = app
            .post(
                &format!("/api/v1/patches/{id}/yank"),
                &f.vendor.token,
                json!({"reason": "again"}),
            )
            .await;
        assert_eq!((status, error_code(&body)), (409, "conflict"));
        let (status, _) = app
            .post(
                &format!("/api/v1/patches/{id}/yank"),
                &f.acme.admin.token,
                json!({"reason": "mine"}),
            )
            .await;
        assert_eq!(status, 403, "a customer yanked a patch");
    }
}

#[actix_web::test]
async fn refused_uploads_and_drafts_leave_nothing_behind() {
    for app in TestApp::each_with(&[("max_patch_bytes", "65536")]).await {
        let f = fixture(&app).await;
        let bytes = file_bytes(1000);
        let id = draft(&app, &f, Some("ab".repeat(32))).await;
        let (status, body) = upload_file(&app, &f.vendor.token, &id, bytes.clone()).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("sha256")),
            "{body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&patchwarden::secrets::sha256_hex(&bytes)));

        let id = draft(&app, &f, None).await;
        let (status, body) = upload_file(&app, &f.vendor.token, &id, file_bytes(65537)).await;
        assert_eq!((status, error_code(&body)), (413, "payload_too_large"), "{body}");
        let (_, meta) = app.get(&format!("/api/v1/patches/{id}"), &f.vendor.token).await;
        assert!(meta["sha256"].is_null(), "a refused upload was recorded");
        let (status, body) = app
            .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (409, "conflict"),
            "publishing without a file"
        );
        assert!(
            walk(&app.data_dir.path().join("patches")).is_empty(),
            "refused uploads left files"
        );

        let (status, _) = upload_file(&app, &f.vendor.token, &id, bytes.clone()).await;
        assert_eq!(status, 200);
        app.post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        let (status, body) = upload_file(&app, &f.vendor.token, &id, file_bytes(10)).await;
        assert_eq!(
            (status, error_code(&body)),
            (409, "conflict"),
            "replacing a published file"
        );

        let base = json!({"product": "screenos", "version": "6.3.0r21", "filename": "p.bin"});
        let with = |key: &str, value: Value| {
            let mut body = base.clone();
            body[key] = value;
            body
        };
        for (body, field) in [
            (with("filename", json!("../../etc/passwd")), "filename"),
            (with("filename", json!(".hidden")), "filename"),
            (with("product", json!("junos")), "product"),
            (with("version", json!("6.3.0r21;rm")), "version"),
            (with("sha256", json!("xyz")), "sha256"),
            (with("fixes", json!(["PW-1999-0001"])), "fixes[0]"),
            (
                with("applies_to", json!([{"introduced": "6.3.0r12", "fixed": "6.3.0r22"}])),
                "applies_to[0]",
            ),
            (with("platform", json!("ssg 500")), "platform"),
        ] {
            let (status, json) = app.post("/api/v1/patches", &f.vendor.token, body.clone()).await;
            assert_eq!(
                (status, json["error"]["field"].as_str()),
                (422, Some(field)),
                "{body}: {json}"
            );
        }
        let (status, _) = app.post("/api/v1/patches", &f.acme.admin.token, base.clone()).await;
        assert_eq!(status, 403);
        let (_, listed) = app.get("/api/v1/patches", &f.vendor.token).await;
        assert_eq!(listed.as_array().unwrap().len(), 2, "a refused draft was written");
    }
}

#[actix_web::test]
async fn offloaded_downloads_are_authorised_here_and_name_the_stored_file() {
    for app in TestApp::each_with(&[("download_offload_prefix", "/_patch_files/")]).await {
        let f = fixture(&app).await;
        let bytes = file_bytes(10_000);
        let sha256 = patchwarden::secrets::sha256_hex(&bytes);
        let id = published_patch(&app, &f, bytes.clone()).await;

        let response = download(&app, &f.acme.admin.token, &id, &[]).await;
        assert_eq!(response.status(), 200);
        let key = format!("sha256/{}/{sha256}", &sha256[..2]);
        assert_eq!(
            response.headers()["x-accel-redirect"],
            format!("/_patch_files/{key}").as_str()
        );
        assert_eq!(response.headers()["etag"], format!("\"{sha256}\"").as_str());
        assert!(
            response.bytes().await.unwrap().is_empty(),
            "the bytes are the front server's to send"
        );
        let stored = std::fs::read(app.data_dir.path().join("patches").join(&key)).unwrap();
        assert!(stored == bytes, "the named file is not the patch");

        let (status, _) = app
            .get(&format!("/api/v1/patches/{id}/download"), &f.globex.admin.token)
            .await;
        assert_eq!(status, 404, "offloading skipped the entitlement check");
        app.post(
            &format!("/api/v1/patches/{id}/yank"),
            &f.vendor.token,
            json!({"reason": "bad build"}),
        )
        .await;
        let (status, _) = app
            .get(&format!("/api/v1/patches/{id}/download"), &f.acme.admin.token)
            .await;
        assert_eq!(status, 410);
    }
}
