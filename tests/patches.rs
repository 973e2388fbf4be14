//! Signed patches: upload, publish, entitled download verified by the stock minisign
//! tool, visibility by entitlement and state, HTTP ranges and validators, refused
//! uploads that leave nothing behind; on local storage and on an S3-compatible server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::{error_code, minisign_verifies, Actor, CustomerFixture, S3Server, TestApp};

struct Fixture {
    vendor: Actor,
    acme: CustomerFixture,
    globex: CustomerFixture,
    advisory: String,
}

async fn fixture(app: &TestApp) -> Fixture {
    let vendor = app.with_vendor_admin().await;
    let product = json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
    assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
    let body = json!({
        "title": "Unauthorized code in ScreenOS", "summary": "Backdoor.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "emergency": true,
        "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
    });
    let (_, draft) = app.post("/api/v1/advisories", &vendor.token, body).await;
    let (_, published) = app
        .post(
            &format!("/api/v1/advisories/{}/publish", draft["id"].as_str().unwrap()),
            &vendor.token,
            json!({}),
        )
        .await;
    let acme = app.with_customer("acme").await;
    let globex = app.with_customer("globex").await;
    let (status, body) = app
        .put(
            "/api/v1/customers/acme/entitlements",
            &vendor.token,
            json!({"products": ["screenos"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["products"], json!(["screenos"]));
    Fixture {
        vendor,
        acme,
        globex,
        advisory: published["id"].as_str().unwrap().to_owned(),
    }
}

/// Bytes that are not all alike, so that ranges are checked for real.
fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

async fn draft(app: &TestApp, f: &Fixture, sha256: Option<String>) -> String {
    let mut body = json!({
        "product": "screenos", "version": "6.3.0r21", "platform": "ssg-500",
        "applies_to": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}],
        "fixes": [f.advisory], "filename": "screenos-6.3.0r21-ssg500.bin"
    });
    if let Some(sha) = sha256 {
        body["sha256"] = json!(sha);
    }
    let (status, created) = app.post("/api/v1/patches", &f.vendor.token, body).await;
    assert_eq!(status, 201, "{created}");
    assert!(created["upload_url"].as_str().unwrap().ends_with("/file"));
    created["id"].as_str().unwrap().to_owned()
}

async fn upload(app: &TestApp, token: &str, id: &str, bytes: Vec<u8>) -> (u16, Value) {
    let response = app
        .client
        .put(app.url(&format!("/api/v1/patches/{id}/file")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    support::status_and_json(response).await
}

/// Uploads and publishes a patch with `bytes`; returns its id.
async fn published_patch(app: &TestApp, f: &Fixture, bytes: Vec<u8>) -> String {
    let id = draft(app, f, Some(patchwarden::secrets::sha256_hex(&bytes))).await;
    let (status, body) = upload(app, &f.vendor.token, &id, bytes).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["state"], "published");
    id
}

async fn download(app: &TestApp, token: &str, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/api/v1/patches/{id}/download")))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
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
    if let Some((ok, output)) = minisign_verifies(&bytes, &signature, &key) {
        assert!(ok, "minisign refused the patch: {output}");
        assert!(output.contains(&format!("sha256={sha256}")), "{output}");
        let mut tampered = bytes.clone();
        tampered[1000] ^= 0x80;
        assert!(
            !minisign_verifies(&tampered, &signature, &key).unwrap().0,
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
async fn the_s3_backend_uploads_publishes_and_serves_the_same_way() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
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

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
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
        let (status, body) = upload(&app, &f.vendor.token, &id, bytes.clone()).await;
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
        let (status, body) = upload(&app, &f.vendor.token, &id, file_bytes(65537)).await;
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

        let (status, _) = upload(&app, &f.vendor.token, &id, bytes.clone()).await;
        assert_eq!(status, 200);
        app.post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        let (status, body) = upload(&app, &f.vendor.token, &id, file_bytes(10)).await;
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

/// `PATCH …/upload` with `bytes` at `offset`.
async fn append(app: &TestApp, token: &str, id: &str, offset: u64, bytes: Vec<u8>) -> reqwest::Response {
    app.client
        .patch(app.url(&format!("/api/v1/patches/{id}/upload")))
        .bearer_auth(token)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", offset.to_string())
        .body(bytes)
        .send()
        .await
        .unwrap()
}

/// The offset the server reports with `HEAD …/upload`.
async fn held(app: &TestApp, token: &str, id: &str) -> u64 {
    let response = app
        .client
        .head(app.url(&format!("/api/v1/patches/{id}/upload")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

/// Partial upload data left in storage (removing it, which a finished test may).
async fn leftover_uploads(app: &TestApp) -> usize {
    app.state
        .storage
        .clean_uploads(&std::collections::HashSet::new())
        .await
        .unwrap()
}

async fn resumable_upload(app: &TestApp) {
    let f = fixture(app).await;
    // More than two S3 parts of 8 MiB, ending off a part boundary.
    let bytes = file_bytes(19 * 1024 * 1024 + 4321);
    let size = bytes.len() as u64;
    let sha256 = patchwarden::secrets::sha256_hex(&bytes);
    let id = draft(app, &f, Some(sha256.clone())).await;
    let token = f.vendor.token.as_str();
    let path = format!("/api/v1/patches/{id}/upload");

    let (status, body) = app.get(&path, token).await;
    assert_eq!(
        (status, error_code(&body)),
        (404, "not_found"),
        "an upload before it began"
    );
    let (status, body) = app.post(&path, token, json!({"size": size})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!((body["offset"].as_u64(), body["size"].as_u64()), (Some(0), Some(size)));
    assert!(body["upload_url"].as_str().unwrap().ends_with(&path));
    assert!(body["expires_at"].as_str().unwrap() > body["updated_at"].as_str().unwrap());

    // The first piece ends inside the first S3 part.
    let first = 5 * 1024 * 1024 + 7;
    let response = append(app, token, &id, 0, bytes[..first].to_vec()).await;
    assert_eq!(response.status(), 204);
    assert_eq!(response.headers()["upload-offset"], first.to_string().as_str());
    assert_eq!(held(app, token, &id).await, first as u64);

    // Refusals change nothing.
    let response = append(app, token, &id, 0, bytes[..10].to_vec()).await;
    let (status, body) = support::status_and_json(response).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains(&first.to_string()));
    let response = append(
        app,
        token,
        &id,
        first as u64,
        bytes[first..].iter().chain(b"x").copied().collect(),
    )
    .await;
    let (status, body) = support::status_and_json(response).await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"), "{body}");
    let response = app
        .client
        .patch(app.url(&path))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("upload-offset", first.to_string())
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    for offset in [None, Some("-1"), Some("12abc")] {
        let mut request = app
            .client
            .patch(app.url(&path))
            .bearer_auth(token)
            .header("content-type", "application/offset+octet-stream")
            .body(vec![1u8; 10]);
        if let Some(offset) = offset {
            request = request.header("upload-offset", offset);
        }
        let (status, body) = support::status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, 400, "offset {offset:?}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Upload-Offset"));
    }
    for (who, caller) in [
        ("a customer", &f.acme.admin.token),
        ("another customer", &f.globex.admin.token),
    ] {
        let (status, _) = app.get(&path, caller).await;
        assert!(status == 403 || status == 404, "{who} read the upload: {status}");
        let response = append(app, caller, &id, first as u64, bytes[first..first + 10].to_vec()).await;
        assert!(
            response.status() == 403 || response.status() == 404,
            "{who} appended: {}",
            response.status()
        );
        let (status, _) = app.delete(&path, caller).await;
        assert!(status == 403 || status == 404, "{who} cancelled the upload: {status}");
    }
    assert_eq!(held(app, token, &id).await, first as u64);

    // A body that breaks off: what arrived is kept.
    let piece = 4 * 1024 * 1024;
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = bytes[first..first + piece]
        .chunks(256 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .chain(std::iter::once(Err(std::io::Error::other("link dropped"))))
        .collect();
    let broken = app
        .client
        .patch(app.url(&path))
        .bearer_auth(token)
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", first.to_string())
        .header("content-length", (size - first as u64).to_string())
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await;
    assert!(broken.is_err(), "the broken body was answered");
    // The server records the broken request when it sees the connection end.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut offset = held(app, token, &id).await;
    while offset == first as u64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the bytes of a broken request were not kept"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        offset = held(app, token, &id).await;
    }
    assert!(
        offset > first as u64 && offset <= (first + piece) as u64,
        "offset {offset}"
    );

    // Resume from the server's offset; the last piece stores the file.
    let response = append(app, token, &id, offset, bytes[offset as usize..].to_vec()).await;
    let (status, body) = support::status_and_json(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["sha256"].as_str(), body["size"].as_u64()),
        (Some(sha256.as_str()), Some(size))
    );
    let (status, _) = app.get(&path, token).await;
    assert_eq!(status, 404, "a finished upload is still open");
    assert_eq!(leftover_uploads(app).await, 0, "partial data outlived the upload");
    let (status, body) = app
        .post(&format!("/api/v1/patches/{id}/publish"), token, json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    let downloaded = download(app, &f.acme.admin.token, &id, &[])
        .await
        .bytes()
        .await
        .unwrap();
    assert!(downloaded == bytes, "the resumed file differs");
    let response = append(app, token, &id, size, Vec::new()).await;
    assert_eq!(response.status(), 409, "appending to a published patch");

    // A file that does not match the draft's hash is refused whole, at the end.
    let id = draft(app, &f, Some("ab".repeat(32))).await;
    let path = format!("/api/v1/patches/{id}/upload");
    app.post(&path, token, json!({"size": 3000})).await;
    assert_eq!(append(app, token, &id, 0, file_bytes(1000)).await.status(), 204);
    let response = append(app, token, &id, 1000, file_bytes(3000)[1000..].to_vec()).await;
    let (status, body) = support::status_and_json(response).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("sha256")),
        "{body}"
    );
    assert_eq!(app.get(&path, token).await.0, 404);
    let (_, meta) = app.get(&format!("/api/v1/patches/{id}"), token).await;
    assert!(meta["sha256"].is_null(), "a refused file was recorded: {meta}");

    // The hash the client declares is checked too, and must agree with the draft's.
    let (status, body) = app
        .post(&path, token, json!({"size": 3000, "sha256": "cd".repeat(32)}))
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("sha256")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains(&"ab".repeat(32)));
    let (status, body) = app.post(&path, token, json!({"size": 3000, "sha256": "xyz"})).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("sha256")),
        "{body}"
    );
    let id = draft(app, &f, None).await;
    let path = format!("/api/v1/patches/{id}/upload");
    let declared = patchwarden::secrets::sha256_hex(&file_bytes(2999));
    let (status, body) = app.post(&path, token, json!({"size": 3000, "sha256": declared})).await;
    assert_eq!(
        (status, body["sha256"].as_str()),
        (201, Some(declared.as_str())),
        "{body}"
    );
    assert_eq!(app.get(&path, token).await.1["sha256"], declared.as_str());
    let response = append(app, token, &id, 0, file_bytes(3000)).await;
    let (status, body) = support::status_and_json(response).await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (422, Some("sha256")),
        "{body}"
    );
    let (_, meta) = app.get(&format!("/api/v1/patches/{id}"), token).await;
    assert!(
        meta["sha256"].is_null(),
        "a file unlike the declared one was recorded: {meta}"
    );

    // Cancelling removes the bytes; a new upload of another size starts afresh.
    app.post(&path, token, json!({"size": 9000})).await;
    assert_eq!(append(app, token, &id, 0, file_bytes(2000)).await.status(), 204);
    let (status, body) = app.post(&path, token, json!({"size": 9001})).await;
    assert_eq!((status, body["offset"].as_u64()), (201, Some(0)), "{body}");
    assert_eq!(append(app, token, &id, 0, file_bytes(2000)).await.status(), 204);
    assert_eq!(app.delete(&path, token).await.0, 204);
    assert_eq!(app.get(&path, token).await.0, 404);
    assert_eq!(leftover_uploads(app).await, 0, "a cancelled upload left data");
    for (body, status) in [
        (json!({"size": 0}), 422),
        (json!({"size": -5}), 422),
        (json!({"size": 1, "offset": 0}), 422),
        (json!({"size": 1u64 << 62}), 413),
    ] {
        let (got, reply) = app.post(&path, token, body.clone()).await;
        assert_eq!(got, status, "{body}: {reply}");
    }
}

#[actix_web::test]
async fn resumable_uploads_keep_what_arrived_and_finish_from_the_servers_offset() {
    for app in TestApp::each().await {
        resumable_upload(&app).await;
        assert!(
            walk(&app.data_dir.path().join("patches/uploads")).is_empty(),
            "partial files were left"
        );
    }
}

#[actix_web::test]
async fn resumable_uploads_on_s3_keep_parts_across_requests() {
    let Some(s3) = S3Server::start().await else {
        return;
    };
    let settings = s3.settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for app in TestApp::each_with(&settings).await {
        resumable_upload(&app).await;
    }
}
