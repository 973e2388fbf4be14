//! A server killed with SIGKILL in the middle of an upload: after a restart no partial
//! file is listed or served, the leftover is cleaned, and the upload can be retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use support::process::{bootstrap_vendor, patchwarden, wait_healthy, Server};
use support::{backends, database_for};

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

#[actix_web::test]
async fn a_killed_upload_leaves_nothing_served_and_can_be_retried() {
    for backend in backends() {
        eprintln!("-- backend: {backend:?}");
        let dir = tempfile::tempdir().unwrap();
        let (database_url, _pg) = database_for(backend, &dir);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bind = format!("127.0.0.1:{port}");
        let env = [
            ("PATCHWARDEN_DATABASE_URL", database_url.as_str()),
            ("PATCHWARDEN_BIND", bind.as_str()),
        ];
        let token = bootstrap_vendor(dir.path(), &env, "ops@vendor.example", "a long and good password");
        let base = format!("http://{bind}");
        let client = reqwest::Client::new();
        let start_server = || {
            Server(
                patchwarden(dir.path(), &env)
                    .arg("serve")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap(),
            )
        };

        let mut server = start_server();
        wait_healthy(&client, &base, &mut server).await;
        let post = |path: &str, body: Value| {
            client
                .post(format!("{base}{path}"))
                .bearer_auth(&token)
                .json(&body)
                .send()
        };
        post(
            "/api/v1/products",
            json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"}),
        )
        .await
        .unwrap();
        let full: Vec<u8> = (0..(24 * 1024 * 1024)).map(|i: usize| (i % 251) as u8).collect();
        let sha256 = patchwarden::secrets::sha256_hex(&full);
        let draft: Value = post(
            "/api/v1/patches",
            json!({"product": "screenos", "version": "6.3.0r21", "filename": "fix.bin", "sha256": sha256}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let id = draft["id"].as_str().unwrap().to_owned();

        // Send 8 MiB, then stall, as a link that drops would.
        let chunks: Vec<Result<Bytes, std::io::Error>> = full[..8 * 1024 * 1024]
            .chunks(1024 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stalled =
            futures_util::StreamExt::chain(futures_util::stream::iter(chunks), futures_util::stream::pending());
        let upload = client
            .put(format!("{base}/api/v1/patches/{id}/file"))
            .bearer_auth(&token)
            .body(reqwest::Body::wrap_stream(stalled))
            .send();
        let in_flight = actix_web::rt::spawn(upload);
        let tmp = dir.path().join("data/patches/tmp");
        let deadline = Instant::now() + Duration::from_secs(60);
        while files_in(&tmp).iter().map(|(_, len)| *len).sum::<u64>() < 4 * 1024 * 1024 {
            assert!(Instant::now() < deadline, "the partial upload never reached the disk");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        server.0.kill().unwrap(); // SIGKILL: no cleanup code runs.
        server.0.wait().unwrap();
        in_flight.abort();
        assert_eq!(files_in(&tmp).len(), 1, "the partial file is in the temporary area");
        assert!(
            files_in(&dir.path().join("data/patches/sha256")).is_empty(),
            "a partial file was published"
        );

        let mut server = start_server();
        wait_healthy(&client, &base, &mut server).await;
        assert!(files_in(&tmp).is_empty(), "the leftover was not cleaned at start");
        let meta: Value = client
            .get(format!("{base}/api/v1/patches/{id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(meta["sha256"].is_null(), "the interrupted upload was recorded: {meta}");
        let download = client
            .get(format!("{base}/api/v1/patches/{id}/download"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 404, "a partial file is served");

        let retry = client
            .put(format!("{base}/api/v1/patches/{id}/file"))
            .bearer_auth(&token)
            .body(full.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(retry.status(), 200);
        let published = post(&format!("/api/v1/patches/{id}/publish"), json!({})).await.unwrap();
        assert_eq!(published.status(), 201);
        let body = client
            .get(format!("{base}/api/v1/patches/{id}/download"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(patchwarden::secrets::sha256_hex(&body), sha256);
    }
}
