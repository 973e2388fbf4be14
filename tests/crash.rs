//! A server killed with SIGKILL in the middle of an upload: after a restart no partial
//! file is listed or served, the leftover is cleaned, and the upload can be retried;
//! a resumable upload goes on from the last offset the server recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::process::{bootstrap_vendor, patchwarden, wait_healthy, Server};
use support::{backends, database_for, Backend};

fn files_in(dir: &std::path::Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_in(&path));
            } else {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((path, len));
            }
        }
    }
    out
}

/// A served binary with a vendor token, a product and a draft for a 24 MiB file.
struct Scene {
    dir: tempfile::TempDir,
    env: Vec<(&'static str, String)>,
    base: String,
    client: reqwest::Client,
    token: String,
    full: Vec<u8>,
    sha256: String,
    id: String,
    _pg: Option<support::PgDatabase>,
}

impl Scene {
    async fn new(backend: Backend) -> (Scene, Server) {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = database_for(backend, &dir);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bind = format!("127.0.0.1:{port}");
        let env = vec![
            ("PATCHWARDEN_DATABASE_URL", database_url),
            ("PATCHWARDEN_BIND", bind.clone()),
        ];
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let token = bootstrap_vendor(dir.path(), &env_refs, "ops@vendor.example", "a long and good password");
        let full: Vec<u8> = (0..(24 * 1024 * 1024)).map(|i: usize| (i % 251) as u8).collect();
        let sha256 = patchwarden::secrets::sha256_hex(&full);
        let mut scene = Scene {
            dir,
            env,
            base: format!("http://{bind}"),
            client: reqwest::Client::new(),
            token,
            full,
            sha256,
            id: String::new(),
            _pg: pg,
        };
        let server = scene.start().await;
        scene
            .post(
                "/api/v1/products",
                json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"}),
            )
            .await;
        let draft = scene
            .post(
                "/api/v1/patches",
                json!({"product": "screenos", "version": "6.3.0r21", "filename": "fix.bin", "sha256": scene.sha256}),
            )
            .await;
        scene.id = draft["id"].as_str().unwrap().to_owned();
        (scene, server)
    }

    async fn start(&self) -> Server {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut server = Server(
            patchwarden(self.dir.path(), &env)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_healthy(&self.client, &self.base, &mut server).await;
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().await.unwrap()
    }

    /// Sends the first `len` bytes of the file as `request`'s body, then stalls as a
    /// link that drops would; returns when `dir` holds at least `reached` bytes.
    async fn stall_after(&self, request: reqwest::RequestBuilder, len: usize, dir: &std::path::Path, reached: u64) {
        let chunks: Vec<Result<Bytes, std::io::Error>> = self.full[..len]
            .chunks(1024 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stalled =
            futures_util::StreamExt::chain(futures_util::stream::iter(chunks), futures_util::stream::pending());
        let in_flight = actix_web::rt::spawn(request.body(reqwest::Body::wrap_stream(stalled)).send());
        let deadline = Instant::now() + Duration::from_secs(60);
        while files_in(dir).iter().map(|(_, len)| *len).sum::<u64>() < reached {
            assert!(Instant::now() < deadline, "the partial upload never reached the disk");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        in_flight.abort();
    }

    async fn download_matches(&self) {
        self.post(&format!("/api/v1/patches/{}/publish", self.id), json!({}))
            .await;
        let body = self
            .client
            .get(self.url(&format!("/api/v1/patches/{}/download", self.id)))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(patchwarden::secrets::sha256_hex(&body), self.sha256);
    }
}

fn kill(mut server: Server) {
    server.0.kill().unwrap(); // SIGKILL: no cleanup code runs.
    server.0.wait().unwrap();
}

#[actix_web::test]
async fn a_killed_upload_leaves_nothing_served_and_can_be_retried() {
    for backend in backends() {
        eprintln!("-- backend: {backend:?}");
        let (scene, server) = Scene::new(backend).await;
        let id = scene.id.clone();
        let tmp = scene.dir.path().join("data/patches/tmp");
        let put = scene
            .client
            .put(scene.url(&format!("/api/v1/patches/{id}/file")))
            .bearer_auth(&scene.token);
        scene.stall_after(put, 8 * 1024 * 1024, &tmp, 4 * 1024 * 1024).await;
        kill(server);
        assert_eq!(files_in(&tmp).len(), 1, "the partial file is in the temporary area");
        assert!(
            files_in(&scene.dir.path().join("data/patches/sha256")).is_empty(),
            "a partial file was published"
        );

        let _server = scene.start().await;
        assert!(files_in(&tmp).is_empty(), "the leftover was not cleaned at start");
        let meta: Value = scene
            .client
            .get(scene.url(&format!("/api/v1/patches/{id}")))
            .bearer_auth(&scene.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(meta["sha256"].is_null(), "the interrupted upload was recorded: {meta}");
        let download = scene
            .client
            .get(scene.url(&format!("/api/v1/patches/{id}/download")))
            .bearer_auth(&scene.token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 404, "a partial file is served");

        let retry = scene
            .client
            .put(scene.url(&format!("/api/v1/patches/{id}/file")))
            .bearer_auth(&scene.token)
            .body(scene.full.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(retry.status(), 200);
        scene.download_matches().await;
    }
}

#[actix_web::test]
async fn a_killed_resumable_upload_goes_on_from_the_recorded_offset() {
    for backend in backends() {
        eprintln!("-- backend: {backend:?}");
        let (scene, server) = Scene::new(backend).await;
        let upload_url = scene.url(&format!("/api/v1/patches/{}/upload", scene.id));
        let append = |offset: usize| {
            scene
                .client
                .patch(&upload_url)
                .bearer_auth(&scene.token)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", offset.to_string())
        };
        let offset_of = |response: &reqwest::Response| -> usize {
            response.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
        };
        scene
            .post(
                &format!("/api/v1/patches/{}/upload", scene.id),
                json!({"size": scene.full.len()}),
            )
            .await;
        let first = 6 * 1024 * 1024 + 3;
        let response = append(0).body(scene.full[..first].to_vec()).send().await.unwrap();
        assert_eq!((response.status().as_u16(), offset_of(&response)), (204, first));

        // The second request dies with the server half-way.
        let uploads = scene.dir.path().join("data/patches/uploads");
        let request = append(first).header("content-length", (scene.full.len() - first).to_string());
        scene
            .stall_after(request, 16 * 1024 * 1024, &uploads, first as u64 + 4 * 1024 * 1024)
            .await;
        kill(server);
        std::fs::write(uploads.join("0190aaaa-orphan"), b"owned by no upload").unwrap();

        let _server = scene.start().await;
        let status = scene
            .client
            .head(&upload_url)
            .bearer_auth(&scene.token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            offset_of(&status),
            first,
            "the offset is the last one recorded before the kill"
        );
        let left: Vec<_> = files_in(&uploads);
        assert_eq!(left.len(), 1, "orphaned partial data survived the restart: {left:?}");
        let response = append(first).body(scene.full[first..].to_vec()).send().await.unwrap();
        assert_eq!(response.status(), 200, "resuming after the restart");
        assert!(files_in(&uploads).is_empty());
        scene.download_matches().await;
    }
}
