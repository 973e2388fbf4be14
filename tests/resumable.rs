//! Resumable patch uploads through the front door: the offset the server holds,
//! appends from it, a body that breaks off and keeps what arrived, hashes checked at
//! the end, cancelling, and who may do what; on local storage and on S3.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::patching::{download, draft, file_bytes, fixture, walk};
use support::{error_code, S3Server, TestApp};

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
#[ignore = "needs moto_server (pip install 'moto[server]'); run with -- --include-ignored, as CI does"]
async fn resumable_uploads_on_s3_keep_parts_across_requests() {
    let s3 = S3Server::start().await;
    let settings = s3.settings();
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for app in TestApp::each_with(&settings).await {
        resumable_upload(&app).await;
    }
}
