//! The reference device agent against a real server, on every backend: a genuine
//! patch installed end to end (and the exposure showing the device fixed, and the
//! server's pull reading the agent's endpoint); every forgery refused, reported
//! with its reason, nothing installed and no file left; a download killed half-way
//! resumed from where it stopped; a simulated fleet of every behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use patchwarden::api::device::Offer;
use patchwarden::client::agent::simulate::{self, FleetSpec};
use patchwarden::client::agent::{Agent, AgentConfig, Identity, Installer, Outcome};
use patchwarden::jobs::{run_once, Job};
use serde_json::{json, Value};
use support::devices::{screenos_agent, server_key};
use support::endpoint::{Endpoint, Reply};
use support::patching::{enrollment_token, file_bytes, fixture, publish_draft, publish_patch, Fixture};
use support::{until, TestApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An agent configuration in `dir` whose install command copies the file to
/// `dir/installed.bin`.
fn config(server: &str, dir: &Path, identity: Identity, key: &str) -> AgentConfig {
    let installed = dir.join("installed.bin");
    let mut config = screenos_agent(server, dir, identity, key, "6.3.0r20");
    config.image_sha256 = Some("1".repeat(64));
    config.installer = Installer::Command(vec![
        "sh".into(),
        "-c".into(),
        "cp \"$PATCHWARDEN_FILE\" \"$0\"".into(),
        installed.to_string_lossy().into_owned(),
    ]);
    config
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    support::patching::walk(dir)
}

/// Pulls the device's version now, as an admin asks for it.
async fn pull_now(app: &TestApp, f: &Fixture, device: &str) -> Value {
    let (status, pulled) = app
        .post(
            &format!("/api/v1/devices/{device}/pull"),
            &f.acme.admin.token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{pulled}");
    pulled
}

async fn device_detail(app: &TestApp, f: &Fixture, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/devices/{id}"), &f.acme.admin.token).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[actix_web::test]
async fn the_agent_installs_a_genuine_patch_and_the_device_shows_fixed() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let bytes = file_bytes(700_000);
        let patch = publish_patch(&app, &f, "6.3.0r21", bytes.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut settings = config(
            &app.base,
            dir.path(),
            Identity::Enrol(enrollment_token(&app, &f, 50).await),
            &server_key(&app).await,
        );
        settings.pull_url = Some(format!("http://{}/pull", listener.local_addr().unwrap()));
        settings.pull_token = Some("pull-secret-of-fw-agent".into());
        settings.pull_listen = Some(listener.local_addr().unwrap());
        let mut agent = Agent::start(settings.clone()).await.unwrap();
        let device = agent.device_id().unwrap().to_owned();
        actix_web::rt::spawn(agent.pull_server(listener));

        // The server's pull reads the agent's endpoint, with the bearer token.
        let pulled = pull_now(&app, &f, &device).await;
        assert_eq!(pulled["version"], "6.3.0r20", "{pulled}");

        let polled = agent.poll().await.unwrap();
        let offer = polled.offer.expect("the fix is offered");
        assert_eq!(
            (offer.patch_id.as_str(), offer.version.as_str()),
            (patch.as_str(), "6.3.0r21")
        );
        let Outcome::Installed { fetched, running } = agent.apply(&offer).await.unwrap() else {
            panic!("the genuine patch was not installed");
        };
        assert_eq!((fetched.resumed_from, fetched.len), (0, bytes.len() as u64));
        assert_eq!(running.version, "6.3.0r21");
        assert_eq!(std::fs::read(dir.path().join("installed.bin")).unwrap(), bytes);
        assert!(
            files_in(&dir.path().join("downloads")).is_empty(),
            "the download is removed after the install"
        );

        // A restart finds the new version in the state file, and polls with it.
        drop(agent);
        let mut agent = Agent::start(settings).await.unwrap();
        assert_eq!(agent.running().version, "6.3.0r21");
        assert!(
            agent.poll().await.unwrap().offer.is_none(),
            "nothing is offered to a fixed device"
        );
        run_once(&app.state, Job::FlushObservations).await.unwrap();

        let detail = device_detail(&app, &f, &device).await;
        let steps: Vec<&str> = detail["reports"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|r| r["state"].as_str().unwrap())
            .collect();
        assert_eq!(
            steps,
            ["downloading", "downloaded", "installing", "installed"],
            "{detail}"
        );
        assert_eq!(detail["version"], "6.3.0r21", "{detail}");
        let (status, exposure) = app
            .get(
                &format!("/api/v1/advisories/{}/exposure", f.advisory),
                &f.acme.admin.token,
            )
            .await;
        assert_eq!(status, 200, "{exposure}");
        assert_eq!(
            (exposure["affected"].as_i64(), exposure["fixed"].as_i64()),
            (Some(0), Some(1)),
            "{exposure}"
        );

        let pulled = pull_now(&app, &f, &device).await;
        assert_eq!(pulled["version"], "6.3.0r21", "{pulled}");
        assert_eq!(pulled["image_sha256"].as_str(), Some(offer.sha256.as_str()), "{pulled}");
    }
}

/// A patch of another product, published and signed for real.
async fn other_product_patch(app: &TestApp, f: &Fixture, bytes: Vec<u8>) -> String {
    let product = json!({"slug": "netscreen", "name": "NetScreen", "version_scheme": "vendor"});
    assert_eq!(app.post("/api/v1/products", &f.vendor.token, product).await.0, 201);
    let body = json!({"product": "netscreen", "version": "6.3.0r22", "applies_to": [{"introduced": "6.3.0r1", "fixed": "6.3.0r22"}],
                      "fixes": [], "filename": "netscreen.bin"});
    publish_draft(app, f, body, bytes).await
}

async fn signature_of(app: &TestApp, f: &Fixture, patch: &str) -> String {
    let response = app
        .client
        .get(app.url(&format!("/api/v1/patches/{patch}/minisig")))
        .bearer_auth(&f.vendor.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// `offer` with a genuine file and signature of another patch in place of its own.
fn replayed(offer: &Offer, bytes: &[u8], signature: &str) -> Offer {
    Offer {
        signature: signature.to_owned(),
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        ..offer.clone()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[actix_web::test]
async fn every_forgery_is_refused_reported_with_its_reason_and_leaves_nothing() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let older = file_bytes(200_000);
        let genuine: Vec<u8> = file_bytes(300_000).into_iter().map(|b| b ^ 0x5a).collect();
        let r21 = publish_patch(&app, &f, "6.3.0r21", older.clone()).await;
        let other_bytes: Vec<u8> = file_bytes(100_000).into_iter().rev().collect();
        let other = other_product_patch(&app, &f, other_bytes.clone()).await;
        let r22 = publish_patch(&app, &f, "6.3.0r22", genuine.clone()).await;
        let key = server_key(&app).await;
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Agent::start(config(
            &app.base,
            dir.path(),
            Identity::Enrol(enrollment_token(&app, &f, 50).await),
            &key,
        ))
        .await
        .unwrap();
        let device = agent.device_id().unwrap().to_owned();
        let offer = agent.poll().await.unwrap().offer.expect("an offer");
        assert_eq!(offer.patch_id, r22);
        let mirror = Endpoint::start("127.0.0.1").await;
        let r21_signature = signature_of(&app, &f, &r21).await;
        let other_signature = signature_of(&app, &f, &other).await;

        let mut tampered = genuine.clone();
        tampered[150_000] ^= 1;
        let served = |path: &str, bytes: Vec<u8>, offer: Offer| {
            mirror.script(path, vec![Reply::Bytes(bytes)]);
            Offer {
                download_url: mirror.url(path),
                ..offer
            }
        };
        let cases: Vec<(&str, Offer, &str)> = vec![
            (
                "tampered file",
                served("/tampered", tampered, offer.clone()),
                "signature does not verify",
            ),
            (
                "wrong signature",
                served(
                    "/wrong-signature",
                    genuine.clone(),
                    Offer {
                        signature: r21_signature.clone(),
                        ..offer.clone()
                    },
                ),
                // The log holds the hash of the signature the patch was published with.
                "logs another signature than the offer's",
            ),
            (
                "another version",
                served(
                    "/replayed-version",
                    older.clone(),
                    replayed(&offer, &older, &r21_signature),
                ),
                // Caught by the log before a byte is downloaded; were it not, the
                // signed trusted comment would refuse it (see the verify unit tests).
                "logs another sha256 than the offer's",
            ),
            (
                "another product",
                served(
                    "/replayed-product",
                    other_bytes.clone(),
                    replayed(&offer, &other_bytes, &other_signature),
                ),
                "logs another sha256 than the offer's",
            ),
            (
                "truncated download",
                served("/truncated", genuine[..120_000].to_vec(), offer.clone()),
                "the download is 120000 bytes, the offer says 300000",
            ),
        ];
        for (case, forged, reason) in &cases {
            let outcome = agent.apply(forged).await.unwrap();
            let Outcome::Refused(why) = outcome else {
                panic!("{case}: not refused: {outcome:?}");
            };
            assert!(why.contains(reason), "{case}: {why}");
        }

        // An agent that pins another key refuses the server's answers themselves.
        let stranger_dir = tempfile::tempdir().unwrap();
        let stranger = patchwarden::signing::Signer::generate(stranger_dir.path(), None).unwrap();
        let (_, listed) = app.get(&format!("/api/v1/devices/{device}"), &f.acme.admin.token).await;
        assert_eq!(listed["id"], device.as_str());
        let token = agent.state().device_token.clone().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let mut unpinned = Agent::start(config(
            &app.base,
            other_dir.path(),
            Identity::Token {
                id: Some(device.clone()),
                token,
            },
            &stranger.public_key().text,
        ))
        .await
        .unwrap();
        // Its answers are signed by a key it does not pin: refused before any offer.
        let polled = unpinned.poll().await.unwrap();
        assert!(polled.offer.is_none());
        let why = polled.refused.expect("an answer signed by an unpinned key is refused");
        assert!(why.contains("which is not trusted"), "{why}");

        for root in [dir.path(), other_dir.path()] {
            assert!(!root.join("installed.bin").exists(), "nothing was installed");
            assert!(
                files_in(&root.join("downloads")).is_empty(),
                "a refused file is deleted"
            );
        }
        assert_eq!(agent.running().version, "6.3.0r20");
        let detail = device_detail(&app, &f, &device).await;
        let failed: Vec<&str> = detail["reports"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "failed")
            .map(|r| r["message"].as_str().unwrap())
            .collect();
        // A refusal reported again in a row is counted on the report before it.
        let reported: u64 = detail["reports"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "failed")
            .map(|r| r["times"].as_u64().unwrap())
            .sum();
        assert_eq!(reported as usize, cases.len() + 1, "{detail}");
        for (case, _, reason) in &cases {
            assert!(
                failed.iter().any(|m| m.contains(reason)),
                "{case} is not reported: {failed:?}"
            );
        }
        assert!(failed.iter().any(|m| m.contains("which is not trusted")), "{failed:?}");
        assert!(
            detail["reports"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["state"] != "installed"),
            "{detail}"
        );
    }
}

/// A loopback proxy that passes the request on and the first `limit` bytes of
/// what comes back, then holds the connection open: a transfer frozen half-way.
async fn stalling_proxy(upstream: std::net::SocketAddr, limit: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let passed = Arc::new(AtomicUsize::new(0));
    let counter = passed.clone();
    actix_web::rt::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            actix_web::rt::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let counter = counter.clone();
            actix_web::rt::spawn(async move {
                let mut buffer = vec![0u8; 16 * 1024];
                loop {
                    let room = limit - counter.load(Ordering::SeqCst);
                    if room == 0 {
                        // Hold the connection: the agent waits for bytes that never come.
                        std::future::pending::<()>().await;
                    }
                    let n = match server_read.read(&mut buffer[..room.min(16 * 1024)]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if client_write.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                    counter.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    (address, passed)
}

#[actix_web::test]
async fn a_download_killed_half_way_resumes_where_it_stopped() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let bytes = file_bytes(4 * 1024 * 1024);
        publish_patch(&app, &f, "6.3.0r21", bytes.clone()).await;
        let key = server_key(&app).await;
        let dir = tempfile::tempdir().unwrap();
        let upstream: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
        let limit = 1_500_000;
        let (proxy, passed) = stalling_proxy(upstream, limit).await;
        let through_proxy = config(
            &format!("http://{proxy}"),
            dir.path(),
            Identity::Enrol(enrollment_token(&app, &f, 50).await),
            &key,
        );
        let mut agent = Agent::start(through_proxy.clone()).await.unwrap();
        let part = dir.path().join("downloads");
        // Enrolment and the poll went through the proxy too; the download is sent
        // through it as well (served from the same origin as the agent's server).
        let offer = agent.poll().await.unwrap().offer.expect("an offer");
        let offer = Offer {
            download_url: format!("http://{proxy}/api/v1/patches/{}/download", offer.patch_id),
            ..offer
        };
        let download = actix_web::rt::spawn(async move { agent.apply(&offer).await });
        until("the transfer stalls half-way", Duration::from_secs(20), || {
            passed.load(Ordering::SeqCst) == limit
                && files_in(&part).iter().map(|p| p.metadata().unwrap().len()).sum::<u64>() >= 1_000_000
        })
        .await;
        download.abort();
        assert!(download.await.is_err(), "the agent was killed mid-download");
        let on_disk: u64 = files_in(&part).iter().map(|p| p.metadata().unwrap().len()).sum();
        assert!(
            on_disk > 1_000_000 && on_disk < bytes.len() as u64,
            "{on_disk} bytes on disk"
        );

        // Restarted, now with a direct connection: it picks up the partial file.
        let direct = AgentConfig {
            server: app.base.parse().unwrap(),
            ..through_proxy
        };
        let mut agent = Agent::start(direct).await.unwrap();
        assert!(agent.state().pending.as_ref().and_then(|p| p.etag.as_ref()).is_some());
        let offer = agent.poll().await.unwrap().offer.expect("still offered");
        let Outcome::Installed { fetched, .. } = agent.apply(&offer).await.unwrap() else {
            panic!("the resumed download was not installed");
        };
        assert_eq!(
            fetched.resumed_from, on_disk,
            "the transfer went on from the bytes on disk"
        );
        assert_eq!(fetched.len, bytes.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("installed.bin")).unwrap(), bytes);
        assert!(files_in(&dir.path().join("downloads")).is_empty());
    }
}

#[actix_web::test]
async fn a_simulated_fleet_shows_every_behaviour() {
    for app in TestApp::each_with(&[("poll_interval", "10s"), ("emergency_poll_interval", "10s")]).await {
        let f = fixture(&app).await;
        let bytes = file_bytes(50_000);
        publish_patch(&app, &f, "6.3.0r21", bytes.clone()).await;
        for version in ["6.3.0r20", "6.3.0r21"] {
            let image = if version == "6.3.0r21" {
                sha256_hex(&bytes)
            } else {
                simulate::release_image("screenos", version)
            };
            let (status, body) = app
                .post(
                    "/api/v1/products/screenos/images",
                    &f.vendor.token,
                    json!({"version": version, "image_sha256": image}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        let dir = tempfile::tempdir().unwrap();
        let mut base = config(
            &app.base,
            dir.path(),
            Identity::Enrol(enrollment_token(&app, &f, 50).await),
            &server_key(&app).await,
        );
        base.name = "sim".into();
        let spec = FleetSpec {
            base,
            count: 12,
            versions: vec!["6.3.0r20".into()],
            mix: "honest=1,slow=1,fails_install=1,claims_only=1,silent=1,unknown_image=1"
                .parse()
                .unwrap(),
            work_dir: dir.path().join("fleet"),
            pull: Some(("127.0.0.1:0".parse().unwrap(), None)),
            slow_install: Duration::from_secs(2),
            start_spread: Duration::from_millis(500),
            fails_only: Vec::new(),
        };
        let mut fleet = simulate::start(spec).await.unwrap();
        until(
            "the honest, slow and unknown-image devices install",
            Duration::from_secs(60),
            || {
                let s = fleet.snapshot();
                s.enrolled == 12 && s.installed >= 8 && s.install_failed >= 2
            },
        )
        .await;
        let snapshot = fleet.snapshot();
        assert_eq!(snapshot.refused, 0, "{snapshot:?}");
        assert_eq!(snapshot.enrolled, 12, "{snapshot:?}");
        // Honest, slow and unknown-image devices run the fix once they have polled
        // again; claims-only devices said so but poll with the old version; silent
        // and failing ones stay affected.
        let started = std::time::Instant::now();
        let exposure = loop {
            run_once(&app.state, Job::FlushObservations).await.unwrap();
            let (status, exposure) = app
                .get(
                    &format!("/api/v1/advisories/{}/exposure", f.advisory),
                    &f.acme.admin.token,
                )
                .await;
            assert_eq!(status, 200, "{exposure}");
            if exposure["fixed"].as_i64() == Some(6) || started.elapsed() > Duration::from_secs(30) {
                break exposure;
            }
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        };
        let counts = ["fixed", "claimed_not_running", "affected"].map(|k| exposure[k].as_i64().unwrap());
        assert_eq!(counts, [6, 2, 6], "{exposure}");
        let (status, anomalies) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        assert_eq!(status, 200, "{anomalies}");
        let unexplained = anomalies["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "unknown_image")
            .count();
        assert!(unexplained >= 2, "{anomalies}");
        fleet.stop();
    }
}
