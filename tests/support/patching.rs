//! Patch fixtures shared by the patch test crates: a vendor with a product and a
//! published advisory, two customers (one entitled), drafts, file bytes, downloads.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;

use super::{Actor, CustomerFixture, TestApp};

pub struct Fixture {
    pub vendor: Actor,
    pub acme: CustomerFixture,
    pub globex: CustomerFixture,
    pub advisory: String,
}

pub async fn fixture(app: &TestApp) -> Fixture {
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

/// Entitles globex, the fixture's second customer, to ScreenOS too.
pub async fn entitle_globex(app: &TestApp, f: &Fixture) {
    let (status, body) = app
        .put(
            "/api/v1/customers/globex/entitlements",
            &f.vendor.token,
            json!({"products": ["screenos"]}),
        )
        .await;
    assert_eq!(status, 200, "[{}] {body}", app.backend.name());
}

/// Drafts the advisory `body` as `token` and publishes it; the publish answer.
pub async fn publish_advisory(app: &TestApp, token: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, draft) = app.post("/api/v1/advisories", token, body).await;
    assert_eq!(status, 201, "{draft}");
    let (status, published) = app
        .post(
            &format!("/api/v1/advisories/{}/publish", draft["id"].as_str().unwrap()),
            token,
            json!({}),
        )
        .await;
    assert_eq!(status, 201, "{published}");
    published
}

/// Bytes that are not all alike, so that ranges are checked for real.
pub fn file_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8).collect()
}

pub async fn draft(app: &TestApp, f: &Fixture, sha256: Option<String>) -> String {
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

/// Publishes a patch to `version` that applies from 6.3.0r12 up to (not including) it.
pub async fn publish_patch(app: &TestApp, f: &Fixture, version: &str, bytes: Vec<u8>) -> String {
    let body = json!({
        "product": "screenos", "version": version, "platform": "ssg-500",
        "applies_to": [{"introduced": "6.3.0r12", "fixed": version}],
        "fixes": [f.advisory], "filename": format!("screenos-{version}.bin")
    });
    publish_draft(app, f, body, bytes).await
}

/// Creates the draft `body` describes, uploads `bytes` and publishes it.
pub async fn publish_draft(app: &TestApp, f: &Fixture, body: serde_json::Value, bytes: Vec<u8>) -> String {
    let (status, created) = app.post("/api/v1/patches", &f.vendor.token, body).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(upload_file(app, &f.vendor.token, &id, bytes).await.0, 200);
    let (status, body) = app
        .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    id
}

/// Sends `bytes` as the draft's file in one `PUT`.
pub async fn upload_file(app: &TestApp, token: &str, id: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
    let response = app
        .client
        .put(app.url(&format!("/api/v1/patches/{id}/file")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .unwrap();
    super::status_and_json(response).await
}

pub async fn download(app: &TestApp, token: &str, id: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url(&format!("/api/v1/patches/{id}/download")))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// An enrolment token of the fixture's entitled customer, for `uses` devices.
pub async fn enrollment_token(app: &TestApp, f: &Fixture, uses: u32) -> String {
    let (status, body) = app
        .post(
            "/api/v1/enrollment-tokens",
            &f.acme.admin.token,
            json!({"max_uses": uses}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
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
