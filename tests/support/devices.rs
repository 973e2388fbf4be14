//! Devices and agents for tests: enrolling a ScreenOS device of the fixture's
//! customer, polling as it, an agent configuration for it, the server's signing
//! key, and tree heads read or signed as a test needs them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use patchwarden::api::device::{Poll, PollResponse};
use patchwarden::api::log::SignedHead;
use patchwarden::client::agent::{AgentConfig, AgentLimits, Identity, Installer};
use patchwarden::domain::log::TreeHead;
use patchwarden::domain::version::VersionScheme;
use patchwarden::signing::Signer;
use serde_json::{json, Value};

use super::patching::Fixture;
use super::TestApp;

/// The server's active signing key, as `GET /api/v1/keys` lists it first.
pub async fn server_key(app: &TestApp) -> String {
    let (status, keys) = app.get("/api/v1/keys", "").await;
    assert_eq!(status, 200, "[{}] {keys}", app.backend.name());
    keys[0]["public_key"].as_str().unwrap().to_owned()
}

/// Enrols a ScreenOS device of acme on the ssg-500; the answer with its id and token.
pub async fn enrol(app: &TestApp, f: &Fixture, name: &str, version: &str) -> Value {
    let body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version});
    let (status, device) = app.post("/api/v1/devices", &f.acme.admin.token, body).await;
    assert_eq!(status, 201, "[{}] {device}", app.backend.name());
    device
}

/// A device's poll answer to `body`.
pub async fn poll(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, answer) = app.post("/api/v1/device/poll", token, body).await;
    assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
    answer
}

/// A device as a test holds it.
#[derive(Clone, Debug)]
pub struct TestDevice {
    pub id: String,
    pub token: String,
}

impl TestApp {
    /// Enrols a ScreenOS ssg-500 device running `version` for the customer whose
    /// admin holds `admin_token`.
    pub async fn enrol_device(&self, admin_token: &str, name: &str, version: &str) -> TestDevice {
        let body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version});
        let (status, device) = self.post("/api/v1/devices", admin_token, body).await;
        assert_eq!(status, 201, "[{}] {device}", self.backend.name());
        TestDevice {
            id: device["id"].as_str().unwrap().to_owned(),
            token: device["token"].as_str().unwrap().to_owned(),
        }
    }

    /// `device`'s poll, read as the agent reads it; `None` when it is not answered
    /// 200 (with the status).
    pub async fn poll_as(&self, device: &TestDevice, request: &Poll) -> Result<PollResponse, u16> {
        let response = self
            .client
            .post(self.url("/api/v1/device/poll"))
            .bearer_auth(&device.token)
            .json(request)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status != 200 {
            return Err(status);
        }
        Ok(response.json().await.unwrap())
    }
}

/// The identity an enrolment answer hands a device.
pub fn identity(device: &Value) -> Identity {
    Identity::Token {
        id: device["id"].as_str().map(str::to_owned),
        token: device["token"].as_str().unwrap().to_owned(),
    }
}

/// An agent of a ScreenOS ssg-500 running `version`, talking to `server`, keeping
/// its files in `dir`, pinning `key`; its install command does nothing and succeeds.
pub fn screenos_agent(server: &str, dir: &Path, identity: Identity, key: &str, version: &str) -> AgentConfig {
    AgentConfig {
        server: server.parse().unwrap(),
        product: "screenos".into(),
        platform: Some("ssg-500".into()),
        name: "fw-agent".into(),
        version: version.into(),
        image_sha256: None,
        image_file: None,
        identity,
        pinned_keys: vec![key.to_owned()],
        state_file: dir.join("state.json"),
        download_dir: dir.join("downloads"),
        installer: Installer::Command(vec!["true".into()]),
        pull_listen: None,
        pull_url: None,
        pull_token: None,
        request_timeout: Duration::from_secs(30),
        version_scheme: VersionScheme::Vendor,
        witnesses: None,
        limits: AgentLimits::default(),
    }
}

/// A signed head as a poll answer carries it, verified with `key`.
pub fn verified(head: &Value, key: &str) -> TreeHead {
    if head.get("note_verifier_key").is_some() {
        // `GET /api/v1/log/head`: the checkpoint is a signed note, verified too.
        let head: patchwarden::api::log::LogHead = serde_json::from_value(head.clone()).unwrap();
        return head.verify(|_| Some(key.to_owned())).unwrap().0;
    }
    let signed: SignedHead = serde_json::from_value(head.clone()).unwrap();
    signed.verify(|_| Some(key.to_owned())).unwrap()
}

/// `head` signed with `signer`, as a poll answer carries it.
pub fn signed(signer: &Signer, head: &TreeHead) -> Value {
    let signature = signer
        .sign(head.checkpoint().as_bytes(), &head.trusted_comment())
        .unwrap();
    json!({
        "origin": head.origin, "tree_size": head.tree_size, "root_hash": hex::encode(head.root_hash),
        "timestamp": head.timestamp, "sequence": head.sequence, "expires_at": head.expires_at,
        "key_id": signer.key_id(), "checkpoint": head.checkpoint(), "signature": signature,
    })
}
