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
use support::{backends, database_for, Backend, S3Server};

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
    env: Vec<(String, String)>,
    base: String,
    client: reqwest::Client,
    token: String,
    full: Vec<u8>,
    sha256: String,
    id: String,
    _pg: Option<support::PgDatabase>,
}

impl Scene {
    async fn new(backend: Backend, settings: &[(&'static str, String)]) -> (Scene, Server) {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, pg) = database_for(backend, &dir);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bind = format!("127.0.0.1:{port}");
        let mut env = vec![
            ("PATCHWARDEN_DATABASE_URL".to_owned(), database_url),
            ("PATCHWARDEN_BIND".to_owned(), bind.clone()),
        ];
        for (name, value) in settings {
            env.push((format!("PATCHWARDEN_{}", name.to_ascii_uppercase()), value.clone()));
        }
        let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
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
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
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
    /// link that drops would; returns once `stored` says enough reached storage.
    async fn stall_until<F, R>(&self, request: reqwest::RequestBuilder, len: usize, mut stored: F)
    where
        F: FnMut() -> R,
        R: std::future::Future<Output = bool>,
    {
        let chunks: Vec<Result<Bytes, std::io::Error>> = self.full[..len]
            .chunks(1024 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stalled =
            futures_util::StreamExt::chain(futures_util::stream::iter(chunks), futures_util::stream::pending());
        let in_flight = actix_web::rt::spawn(request.body(reqwest::Body::wrap_stream(stalled)).send());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stored().await {
            assert!(Instant::now() < deadline, "the partial upload never reached storage");
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

/// Whether the files under `dir` hold at least `bytes`.
async fn holds(dir: &std::path::Path, bytes: u64) -> bool {
    files_in(dir).iter().map(|(_, len)| *len).sum::<u64>() >= bytes
}

fn kill(mut server: Server) {
    server.0.kill().unwrap(); // SIGKILL: no cleanup code runs.
    server.0.wait().unwrap();
}

#[actix_web::test]
async fn a_killed_upload_leaves_nothing_served_and_can_be_retried() {
    for backend in backends() {
        support::on_backend(backend);
        eprintln!("-- backend: {backend:?}");
        let (scene, server) = Scene::new(backend, &[]).await;
        let id = scene.id.clone();
        let tmp = scene.dir.path().join("data/patches/tmp");
        let put = scene
            .client
            .put(scene.url(&format!("/api/v1/patches/{id}/file")))
            .bearer_auth(&scene.token);
        scene
            .stall_until(put, 8 * 1024 * 1024, || holds(&tmp, 4 * 1024 * 1024))
            .await;
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

/// Where a resumable upload's partial data lives: a local folder, or a bucket of an
/// S3-compatible server that answers unsigned requests (moto).
enum PartialStore<'a> {
    Local(std::path::PathBuf),
    S3(&'a S3Server),
}

impl PartialStore<'_> {
    /// Names of the objects under `uploads/`.
    async fn names(&self) -> Vec<String> {
        match self {
            PartialStore::Local(dir) => files_in(dir)
                .into_iter()
                .map(|(path, _)| path.file_name().unwrap().to_string_lossy().into_owned())
                .collect(),
            PartialStore::S3(s3) => {
                let listing = reqwest::get(format!("{}/{}?list-type=2&prefix=uploads/", s3.endpoint, s3.bucket))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                listing
                    .split("<Key>")
                    .skip(1)
                    .filter_map(|rest| rest.split("</Key>").next())
                    .map(|key| key.trim_start_matches("uploads/").to_owned())
                    .collect()
            }
        }
    }

    /// Whether the killed request got well into storage: 4 MiB written to the partial
    /// file, or two new parts of the open multipart upload stored.
    async fn well_into(&self, first: usize) -> bool {
        match self {
            PartialStore::Local(dir) => holds(dir, first as u64 + 4 * 1024 * 1024).await,
            PartialStore::S3(s3) => {
                let base = format!("{}/{}", s3.endpoint, s3.bucket);
                let uploads = reqwest::get(format!("{base}?uploads"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let key = uploads.split("<Key>").nth(1).and_then(|r| r.split("</Key>").next());
                let id = uploads
                    .split("<UploadId>")
                    .nth(1)
                    .and_then(|r| r.split("</UploadId>").next());
                let (Some(key), Some(id)) = (key, id) else { return false };
                let parts = reqwest::get(format!("{base}/{key}?uploadId={id}"))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                parts.matches("<PartNumber>").count() >= 2
            }
        }
    }

    async fn add_orphan(&self, name: &str) {
        match self {
            PartialStore::Local(dir) => std::fs::write(dir.join(name), b"owned by no upload").unwrap(),
            PartialStore::S3(s3) => {
                let response = reqwest::Client::new()
                    .put(format!("{}/{}/uploads/{name}", s3.endpoint, s3.bucket))
                    .body("owned by no upload")
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
            }
        }
    }
}

async fn killed_resumable_upload(backend: Backend, s3: Option<&S3Server>) {
    let settings = s3.map(S3Server::settings).unwrap_or_default();
    let (scene, server) = Scene::new(backend, &settings).await;
    let store = match s3 {
        Some(s3) => PartialStore::S3(s3),
        None => PartialStore::Local(scene.dir.path().join("data/patches/uploads")),
    };
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
    // Less than one S3 part: on S3 the first request leaves only a tail object.
    let first = 6 * 1024 * 1024 + 3;
    let response = append(0).body(scene.full[..first].to_vec()).send().await.unwrap();
    assert_eq!((response.status().as_u16(), offset_of(&response)), (204, first));
    let before = store.names().await;
    assert_eq!(before.len(), 1, "{before:?}");

    // The second request dies with the server half-way.
    let request = append(first).header("content-length", (scene.full.len() - first).to_string());
    scene
        .stall_until(request, 16 * 1024 * 1024, || store.well_into(first))
        .await;
    kill(server);
    store.add_orphan("0190aaaa-orphan").await;

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
    assert_eq!(
        store.names().await,
        before,
        "orphaned partial data survived the restart"
    );
    let response = append(first).body(scene.full[first..].to_vec()).send().await.unwrap();
    assert_eq!(response.status(), 200, "resuming after the restart");
    assert!(store.names().await.is_empty(), "partial data outlived the upload");
    scene.download_matches().await;
}

#[actix_web::test]
async fn a_killed_resumable_upload_goes_on_from_the_recorded_offset() {
    for backend in backends() {
        support::on_backend(backend);
        eprintln!("-- backend: {backend:?}");
        killed_resumable_upload(backend, None).await;
    }
}

#[actix_web::test]
#[ignore = "needs moto_server (pip install 'moto[server]'); run with -- --include-ignored, as CI does"]
async fn a_killed_resumable_upload_on_s3_keeps_its_recorded_parts_and_tail() {
    let s3 = S3Server::start().await;
    for backend in backends() {
        support::on_backend(backend);
        eprintln!("-- backend: {backend:?}");
        killed_resumable_upload(backend, Some(&s3)).await;
    }
}
