//! A man in the middle between a real agent and a real server, on every backend:
//! a relay that rewrites the server's answers as an attacker on the path (a
//! network, a mirror, a compromised CDN) would. Each forgery either leaves the
//! device exactly where it was (a refused answer changes neither its schedule nor
//! its state) or is refused with a reason that names it: a forged poll interval, a
//! yanked patch offered again under a fresh head, a pre-release downgrade on a
//! semver product, a rewritten size, an oversized answer, a head signed by a key
//! declared compromised, a rollout's hold claimed in a state the log does not show. A device cut off from genuine heads says so, and shows as
//! stale on the dashboard, on its page and in a signed webhook.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use patchwarden::api::device::Offer;
use patchwarden::client::agent::state::Pending;
use patchwarden::client::agent::{Agent, AgentConfig, AgentLimits, AgentState, Outcome};
use patchwarden::client::audit::{self, AuditRequest};
use patchwarden::domain::log::{Revocation, TreeHead};
use patchwarden::domain::version::VersionScheme;
use patchwarden::jobs::{run_once, Job};
use patchwarden::signing::{self};
use serde_json::{json, Value};
use support::devices::{identity, screenos_agent, server_key, signed, verified};
use support::endpoint::{Endpoint, Reply};
use support::mitm::{Mitm, Rule};
use support::patching::{file_bytes, fixture, publish_patch, upload_file, Fixture};
use support::{sign_in, verify_webhook, TestApp};

const POLL: &str = "/api/v1/device/poll";

/// Bounds that the tests can tell apart from anything a server would send.
fn limits() -> AgentLimits {
    AgentLimits {
        poll_min: Duration::from_secs(10),
        poll_max: Duration::from_secs(30 * 60),
        ..AgentLimits::default()
    }
}

/// An agent of `device` (an enrolment answer) that talks to `server`, within
/// bounds the tests can tell apart from anything a server would send.
fn agent_config(server: &str, dir: &Path, device: &Value, key: &str, product: &str, version: &str) -> AgentConfig {
    let mut config = screenos_agent(server, dir, identity(device), key, version);
    config.request_timeout = Duration::from_secs(20);
    config.limits = limits();
    if product != "screenos" {
        config.product = product.into();
        config.platform = None;
        config.version_scheme = VersionScheme::Semver;
    }
    config
}

/// Enrols a device of acme; the answer with its id and token.
async fn enrol(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, device) = app.post("/api/v1/devices", token, body).await;
    assert_eq!(status, 201, "[{}] {device}", app.backend.name());
    device
}

async fn enrol_screenos(app: &TestApp, f: &Fixture, name: &str, version: &str) -> Value {
    let body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version});
    enrol(app, &f.acme.admin.token, body).await
}

/// A genuine poll answer, asked directly.
async fn poll(app: &TestApp, device: &Value, version: &str) -> Value {
    let token = device["token"].as_str().unwrap();
    let (status, answer) = app.post(POLL, token, json!({"version": version})).await;
    assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
    answer
}

/// A ScreenOS fix for 6.3.0r20 devices published, one such device of acme, and a
/// relay in front of the server.
struct Scene {
    key: String,
    device: Value,
    mitm: Mitm,
}

impl Scene {
    async fn with_fix(app: &TestApp) -> Scene {
        let f = fixture(app).await;
        publish_patch(app, &f, "6.3.0r21", file_bytes(4096)).await;
        Scene {
            key: server_key(app).await,
            device: enrol_screenos(app, &f, "fw1", "6.3.0r20").await,
            mitm: Mitm::start(&app.base).await,
        }
    }
}

fn refused(polled: &patchwarden::client::agent::Polled) -> &str {
    assert!(polled.offer.is_none(), "a refused answer offers nothing");
    polled.refused.as_deref().expect("the answer was refused")
}

fn no_download(dir: &Path) {
    let left = support::patching::walk(&dir.join("downloads"));
    assert!(left.is_empty(), "bytes of the patch were written: {left:?}");
}

#[actix_web::test]
async fn a_forged_poll_interval_neither_silences_nor_rushes_the_device() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let Scene { key, device, mitm, .. } = Scene::with_fix(&app).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = agent_config(&mitm.url(), dir.path(), &device, &key, "screenos", "6.3.0r20");
        let mut agent = Agent::start(settings).await.unwrap();
        let state_before = std::fs::read(dir.path().join("state.json")).unwrap();

        // No head, and a wait of 31 years: refused, and the agent's own wait stands.
        mitm.edit(POLL, |mut answer| {
            answer.as_object_mut().unwrap().remove("log_head");
            answer["poll_interval_s"] = json!(1_000_000_000u64);
            answer
        });
        let polled = agent.poll().await.unwrap();
        assert!(
            refused(&polled).contains("no signed tree head"),
            "[{backend}] {polled:?}"
        );
        assert_eq!(
            polled.interval,
            Duration::from_secs(10),
            "[{backend}] the agent's own interval"
        );
        assert!(agent.head().is_none(), "[{backend}] nothing was taken from the answer");
        assert_eq!(
            std::fs::read(dir.path().join("state.json")).unwrap(),
            state_before,
            "[{backend}] a refused answer changes nothing in the state"
        );
        // Refused again: the next poll comes after the agent's backoff, not the answer's.
        let wait = agent.cycle().await.unwrap();
        assert_eq!(wait, Duration::from_secs(20), "[{backend}] the backoff doubles");
        assert_eq!(mitm.hits(POLL), 2);

        // A genuine head with a huge interval: taken, the wait held to poll_max.
        mitm.edit(POLL, |mut answer| {
            answer["poll_interval_s"] = json!(1_000_000_000u64);
            answer
        });
        let polled = agent.poll().await.unwrap();
        assert_eq!(polled.refused, None, "[{backend}]");
        assert_eq!(
            polled.interval,
            Duration::from_secs(30 * 60),
            "[{backend}] clamped to poll_max"
        );
        // Or none at all: held to poll_min.
        mitm.edit(POLL, |mut answer| {
            answer["poll_interval_s"] = json!(0);
            answer
        });
        assert_eq!(
            agent.poll().await.unwrap().interval,
            Duration::from_secs(10),
            "[{backend}]"
        );
        // A throttle is held within the same bounds, either way.
        for (asked, obeyed) in [("1000000000", 30 * 60), ("0", 10)] {
            mitm.rule(
                POLL,
                Rule::Reply {
                    status: 429,
                    headers: vec![("Retry-After".into(), asked.into())],
                    body: r#"{"error":{"code":"rate_limited","message":"slow down"}}"#.into(),
                },
            );
            let polled = agent.poll().await.unwrap();
            assert_eq!(
                polled.interval,
                Duration::from_secs(obeyed),
                "[{backend}] Retry-After {asked}"
            );
        }
        // A genuine answer with the server's own interval is obeyed as it is.
        mitm.pass(POLL);
        let polled = agent.poll().await.unwrap();
        assert!(
            polled.interval >= Duration::from_secs(10) && polled.interval <= Duration::from_secs(5 * 60),
            "[{backend}] the emergency interval: {:?}",
            polled.interval
        );
    }
}

#[actix_web::test]
async fn a_yanked_patch_offered_again_under_a_fresh_head_is_refused_naming_the_yank() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let patch = publish_patch(&app, &f, "6.3.0r21", file_bytes(4096)).await;
        let key = server_key(&app).await;
        let device = enrol_screenos(&app, &f, "fw1", "6.3.0r20").await;
        let captured = poll(&app, &device, "6.3.0r20").await;
        assert_eq!(captured["update"]["patch_id"], json!(patch), "[{backend}] {captured}");

        let reason = "bricks the SSG-500 boot loader";
        let (status, body) = app
            .post(
                &format!("/api/v1/patches/{patch}/yank"),
                &f.vendor.token,
                json!({"reason": reason}),
            )
            .await;
        assert_eq!(status, 200, "[{backend}] {body}");

        // The attacker's answer: today's genuine head, the captured offer with a fresh
        // inclusion proof of its publication, and the yanks the public log records.
        let now = poll(&app, &device, "6.3.0r20").await;
        assert!(
            now["update"].is_null(),
            "[{backend}] the server offers it no more: {now}"
        );
        let head = verified(&now["log_head"], &key);
        let index = captured["update"]["log"]["index"].as_u64().unwrap();
        let (_, proof) = app
            .get(
                &format!("/api/v1/log/proof/inclusion?index={index}&tree_size={}", head.tree_size),
                "",
            )
            .await;
        let mut offer = captured["update"].clone();
        offer["log"]["tree_size"] = json!(head.tree_size);
        offer["log"]["proof"] = proof["proof"].clone();
        let (_, entries) = app
            .get(&format!("/api/v1/log/entries?start=0&end={}", head.tree_size), "")
            .await;
        let revoked: Vec<Revocation> = entries["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| Revocation::of_entry(e["index"].as_u64().unwrap(), e["leaf"].as_str().unwrap()))
            .collect();
        assert!(revoked.iter().any(|r| r.patch == patch), "[{backend}] {revoked:?}");

        let mitm = Mitm::start(&app.base).await;
        let dir = tempfile::tempdir().unwrap();
        // The device had begun downloading the patch before the yank.
        let pending: Offer = serde_json::from_value(captured["update"].clone()).unwrap();
        let part = dir.path().join("downloads").join(format!("{patch}.part"));
        std::fs::create_dir_all(part.parent().unwrap()).unwrap();
        std::fs::write(&part, &file_bytes(4096)[..1000]).unwrap();
        AgentState {
            device_id: device["id"].as_str().map(str::to_owned),
            device_token: device["token"].as_str().map(str::to_owned),
            version: Some("6.3.0r20".into()),
            pending: Some(Pending {
                offer: pending,
                etag: Some("\"x\"".into()),
                ready: false,
            }),
            ..AgentState::default()
        }
        .save(&dir.path().join("state.json"))
        .unwrap();
        let settings = agent_config(&mitm.url(), dir.path(), &device, &key, "screenos", "6.3.0r20");
        let mut agent = Agent::start(settings).await.unwrap();
        // The genuine answer no longer offers it: the partial download goes.
        let polled = agent.poll().await.unwrap();
        assert!(
            polled.refused.is_none() && polled.offer.is_none(),
            "[{backend}] {polled:?}"
        );
        assert!(
            !part.exists(),
            "[{backend}] the partial download of a yanked patch is kept"
        );
        assert!(agent.state().pending.is_none(), "[{backend}]");
        let forge = |revoked: Option<Value>| {
            let mut answer = now.clone();
            answer["update"] = offer.clone();
            match revoked {
                Some(list) => answer["revoked"] = list,
                None => {
                    answer.as_object_mut().unwrap().remove("revoked");
                }
            }
            Rule::Reply {
                status: 200,
                headers: vec![],
                body: answer.to_string(),
            }
        };
        for (list, names) in [
            (Some(json!(revoked)), vec!["was yanked by the vendor", reason]),
            (None, vec!["no list of yanked patches"]),
            (Some(json!([])), vec!["no list of yanked patches"]),
        ] {
            mitm.rule(POLL, forge(list));
            let polled = agent.poll().await.unwrap();
            assert_eq!(polled.refused, None, "[{backend}] the head itself is genuine");
            let offer = polled.offer.expect("the forged offer");
            let Outcome::Refused(why) = agent.apply(&offer).await.unwrap() else {
                panic!("[{backend}] a yanked patch was acted on");
            };
            for name in names {
                assert!(why.contains(name), "[{backend}] {why}");
            }
            no_download(dir.path());
        }
        assert_eq!(agent.running().version, "6.3.0r20", "[{backend}]");
    }
}

/// Creates a draft, uploads `bytes`, publishes it; the patch id.
async fn publish(app: &TestApp, token: &str, body: Value, bytes: Vec<u8>) -> String {
    let (status, created) = app.post("/api/v1/patches", token, body).await;
    assert_eq!(status, 201, "[{}] {created}", app.backend.name());
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(upload_file(app, token, &id, bytes).await.0, 200);
    let (status, published) = app
        .post(&format!("/api/v1/patches/{id}/publish"), token, json!({}))
        .await;
    assert_eq!(status, 201, "[{}] {published}", app.backend.name());
    id
}

#[actix_web::test]
async fn a_semver_device_refuses_a_pre_release_downgrade_unless_it_is_a_signed_rollback() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let vendor = app.with_vendor_admin().await;
        let product = json!({"slug": "acmeos", "name": "AcmeOS", "version_scheme": "semver"});
        assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
        let acme = app.with_customer("acme").await;
        let (status, body) = app
            .put(
                "/api/v1/customers/acme/entitlements",
                &vendor.token,
                json!({"products": ["acmeos"]}),
            )
            .await;
        assert_eq!(status, 200, "[{backend}] {body}");
        let key = server_key(&app).await;
        // The release candidate, offered to the 1.x train.
        let body = json!({"product": "acmeos", "version": "2.0.0-rc.1",
            "applies_to": [{"introduced": "1.0.0", "fixed": "2.0.0-rc.1"}], "fixes": [], "filename": "acmeos-rc1.bin"});
        publish(&app, &vendor.token, body, file_bytes(3000)).await;
        let old = enrol(
            &app,
            &acme.admin.token,
            json!({"name": "old", "product": "acmeos", "version": "1.5.0"}),
        )
        .await;
        let new = enrol(
            &app,
            &acme.admin.token,
            json!({"name": "new", "product": "acmeos", "version": "2.0.0"}),
        )
        .await;
        let genuine = poll(&app, &old, "1.5.0").await;
        assert_eq!(genuine["update"]["version"], "2.0.0-rc.1", "[{backend}] {genuine}");

        // A device on 2.0.0 is handed the 1.x devices' genuine, logged, signed offer.
        let mitm = Mitm::start(&app.base).await;
        mitm.rule(
            POLL,
            Rule::Reply {
                status: 200,
                headers: vec![],
                body: genuine.to_string(),
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let mut agent = Agent::start(agent_config(&mitm.url(), dir.path(), &new, &key, "acmeos", "2.0.0"))
            .await
            .unwrap();
        let offer = agent.poll().await.unwrap().offer.expect("the replayed offer");
        let Outcome::Refused(why) = agent.apply(&offer).await.unwrap() else {
            panic!("[{backend}] a downgrade to a pre-release was installed");
        };
        assert!(
            why.contains("goes back from 2.0.0 to the older 2.0.0-rc.1"),
            "[{backend}] {why}"
        );
        no_download(dir.path());

        // An agent that orders the product's versions in another scheme takes nothing.
        let vendor_dir = tempfile::tempdir().unwrap();
        let mut wrong = agent_config(&app.base, vendor_dir.path(), &old, &key, "acmeos", "1.5.0");
        wrong.version_scheme = VersionScheme::Vendor;
        let mut confused = Agent::start(wrong).await.unwrap();
        let offer = confused.poll().await.unwrap().offer.expect("the genuine offer");
        let Outcome::Refused(why) = confused.apply(&offer).await.unwrap() else {
            panic!("[{backend}] a patch of another version scheme was acted on");
        };
        assert!(
            why.contains("as semver") && why.contains("as vendor"),
            "[{backend}] {why}"
        );

        // The vendor signs a rollback to the release candidate: offered, and installed.
        let body = json!({"product": "acmeos", "version": "2.0.0-rc.1", "rollback": true,
            "applies_to": [{"introduced": "2.0.0", "fixed": "2.0.1"}], "fixes": [], "filename": "acmeos-back.bin"});
        let rollback = publish(&app, &vendor.token, body, file_bytes(3500)).await;
        drop(agent);
        let mut agent = Agent::start(agent_config(&app.base, dir.path(), &new, &key, "acmeos", "2.0.0"))
            .await
            .unwrap();
        let offer = agent.poll().await.unwrap().offer.expect("the rollback is offered");
        assert_eq!((offer.patch_id.as_str(), offer.rollback), (rollback.as_str(), true));
        let outcome = agent.apply(&offer).await.unwrap();
        assert!(
            matches!(&outcome, Outcome::Installed { running, .. } if running.version == "2.0.0-rc.1"),
            "[{backend}] {outcome:?}"
        );
    }
}

#[actix_web::test]
async fn a_rewritten_size_or_an_oversized_answer_is_refused_before_it_is_written_or_held() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let Scene { key, device, mitm, .. } = Scene::with_fix(&app).await;
        let relay = mitm.url();
        // The size says 64 MiB; the download would come through the relay.
        mitm.edit(POLL, move |mut answer| {
            answer["update"]["size"] = json!(64u64 << 20);
            let id = answer["update"]["patch_id"].as_str().unwrap().to_owned();
            answer["update"]["download_url"] = json!(format!("{relay}/api/v1/patches/{id}/download"));
            answer
        });
        let dir = tempfile::tempdir().unwrap();
        let settings = agent_config(&mitm.url(), dir.path(), &device, &key, "screenos", "6.3.0r20");
        let mut agent = Agent::start(settings.clone()).await.unwrap();
        let offer = agent.poll().await.unwrap().offer.expect("the rewritten offer");
        let Outcome::Refused(why) = agent.apply(&offer).await.unwrap() else {
            panic!("[{backend}] a rewritten size was acted on");
        };
        assert!(why.contains("logs another size"), "[{backend}] {why}");
        assert_eq!(
            mitm.hits_under("/api/v1/patches/"),
            0,
            "[{backend}] nothing was requested"
        );
        assert_eq!(mitm.downloaded(), 0);
        no_download(dir.path());

        // A genuine patch larger than the device takes is refused before it is fetched.
        mitm.pass(POLL);
        let small_dir = tempfile::tempdir().unwrap();
        let mut small = agent_config(&mitm.url(), small_dir.path(), &device, &key, "screenos", "6.3.0r20");
        small.limits.max_patch_bytes = 1000;
        let mut small = Agent::start(small).await.unwrap();
        let offer = small.poll().await.unwrap().offer.expect("the genuine offer");
        let Outcome::Refused(why) = small.apply(&offer).await.unwrap() else {
            panic!("[{backend}] a patch over max_patch_bytes was fetched");
        };
        assert!(why.contains("4096 bytes, more than the 1000"), "[{backend}] {why}");
        no_download(small_dir.path());

        // A 10 MiB poll answer that says so is refused unread.
        let release = Arc::new(tokio::sync::Notify::new());
        let ten_mib = 10 << 20;
        mitm.rule(
            POLL,
            Rule::Huge {
                len: ten_mib,
                announce: true,
                pause: ten_mib,
                release: release.clone(),
            },
        );
        let err = agent.poll().await.unwrap_err();
        assert!(
            format!("{err:#}").contains("announced 10485760 bytes"),
            "[{backend}] {err:#}"
        );
        // One that does not say so is refused once it runs past the bound: the relay
        // sends 2 MiB and then waits until the poll has ended, so an agent that held
        // the whole answer would time out instead.
        mitm.rule(
            POLL,
            Rule::Huge {
                len: ten_mib,
                announce: false,
                pause: 2 << 20,
                release: release.clone(),
            },
        );
        let err = agent.poll().await.unwrap_err();
        assert!(
            format!("{err:#}").contains("ran past the 1048576 bytes"),
            "[{backend}] {err:#}"
        );
        assert!(mitm.huge_written() <= 2 << 20, "[{backend}] {}", mitm.huge_written());
        release.notify_one();
        // Failed polls back off from poll_min.
        assert_eq!(agent.retry_interval(), Duration::from_secs(20), "[{backend}]");
    }
}

#[actix_web::test]
async fn a_head_signed_by_a_key_declared_compromised_is_refused() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        let device = enrol_screenos(&app, &f, "fw1", "6.3.0r20").await;
        let mitm = Mitm::start(&app.base).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = agent_config(&mitm.url(), dir.path(), &device, &key, "screenos", "6.3.0r20");
        let mut agent = Agent::start(settings).await.unwrap();
        assert_eq!(agent.poll().await.unwrap().refused, None, "[{backend}]");

        // The key leaks: the vendor rotates, declaring it compromised after the log's size.
        let stolen = app.state.signer.clone();
        let size = app.db(|conn| Ok(patchwarden::db::models::log::size(conn)?)).await;
        signing::rotate(&app.config.keys_dir, None, None, "2026-12-06T00:00:00Z", Some(size)).unwrap();
        let app = app.restart().await;
        mitm.set_upstream(&app.base);
        let polled = agent.poll().await.unwrap();
        assert_eq!(
            polled.refused, None,
            "[{backend}] the new key is learnt from the rotation"
        );
        let learnt = &agent.state().learnt_keys;
        assert_eq!(learnt.len(), 1, "[{backend}] {learnt:?}");
        assert_eq!(learnt[0].compromised_after, Some(size), "[{backend}]");
        let held = agent.head().unwrap().clone();
        assert!(held.tree_size > size, "[{backend}] the restart logged the new key");

        // The thief signs a head for the log as it stands, newer than any seen.
        let now = chrono::Utc::now();
        let forged = signed(
            &stolen,
            &TreeHead {
                sequence: held.sequence + 1,
                timestamp: now,
                expires_at: now + chrono::TimeDelta::hours(1),
                ..held.clone()
            },
        );
        mitm.edit(POLL, move |mut answer| {
            answer["log_head"] = forged.clone();
            answer
        });
        let polled = agent.poll().await.unwrap();
        let why = refused(&polled);
        assert!(
            why.contains("compromised") && why.contains(stolen.key_id()),
            "[{backend}] {why}"
        );
        assert_eq!(agent.head(), Some(&held), "[{backend}] the head held stays");

        // An auditor pinned to the old key follows the rotation and finds the genuine
        // log clean: nothing was signed with the stolen key after the rotation.
        let report = audit::audit(&AuditRequest {
            server: app.base.parse().unwrap(),
            public_key: key.clone(),
            state_file: None,
            token: None,
            witness_policy: None,
        })
        .await
        .unwrap();
        assert!(report.ok(), "[{backend}] {:?}", report.problems);
        assert!(
            report
                .checked
                .iter()
                .any(|c| c.contains("yanked patches its entries record")),
            "[{backend}] {:?}",
            report.checked
        );
    }
}

#[actix_web::test]
async fn a_device_cut_off_from_genuine_heads_shows_as_stale_and_says_so_in_a_signed_webhook() {
    for app in TestApp::each_with(&[("webhooks_allow_http", "true")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        let device = enrol_screenos(&app, &f, "fw-cut-off", "6.3.0r20").await;
        let id = device["id"].as_str().unwrap().to_owned();
        let receiver = Endpoint::start("127.0.0.1").await;
        receiver.script("/hook", vec![Reply::Json(200, "{}".into())]);
        let (status, hook) = app
            .post(
                "/api/v1/webhooks",
                &f.acme.admin.token,
                json!({"url": receiver.url("/hook"), "events": ["device.stale"]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {hook}");
        let secret = hook["secret"].as_str().unwrap().to_owned();

        // The newest genuine head the device holds was signed three hours ago.
        let genuine = poll(&app, &device, "6.3.0r20").await;
        let head = verified(&genuine["log_head"], &key);
        let now = chrono::Utc::now();
        let old = signed(
            &app.state.signer,
            &TreeHead {
                sequence: head.sequence - 1,
                timestamp: now - chrono::TimeDelta::hours(3),
                expires_at: now - chrono::TimeDelta::hours(2),
                ..head.clone()
            },
        );
        let dir = tempfile::tempdir().unwrap();
        AgentState {
            device_id: Some(id.clone()),
            device_token: device["token"].as_str().map(str::to_owned),
            version: Some("6.3.0r20".into()),
            log_head: Some(serde_json::from_value(old).unwrap()),
            ..AgentState::default()
        }
        .save(&dir.path().join("state.json"))
        .unwrap();
        // Since then, every answer is stripped of its head.
        let mitm = Mitm::start(&app.base).await;
        mitm.edit(POLL, |mut answer| {
            answer.as_object_mut().unwrap().remove("log_head");
            answer
        });
        let settings = agent_config(&mitm.url(), dir.path(), &device, &key, "screenos", "6.3.0r20");
        let mut agent = Agent::start(settings).await.unwrap();
        assert!(agent.freshness().stale(chrono::Utc::now()), "[{backend}]");
        let polled = agent.poll().await.unwrap();
        refused(&polled);

        // Its pull endpoint says so too.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(agent.pull_server(listener));
        let pulled: Value = reqwest::get(format!("http://{address}/pull"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        server.abort();
        assert_eq!(pulled["stale"], json!(true), "[{backend}] {pulled}");
        assert!(
            pulled["head_age_s"].as_u64().unwrap() >= 3 * 3600,
            "[{backend}] {pulled}"
        );

        // The server marks it, flags it once, and tells the customer, signed.
        run_once(&app.state, Job::FlushObservations).await.unwrap();
        let (_, detail) = app.get(&format!("/api/v1/devices/{id}"), &f.acme.admin.token).await;
        assert!(detail["stale_since"].is_string(), "[{backend}] {detail}");
        assert!(
            detail["head_age_s"].as_i64().is_some_and(|age| age >= 3 * 3600),
            "[{backend}] {detail}"
        );
        agent.poll().await.unwrap();
        run_once(&app.state, Job::FlushObservations).await.unwrap();
        let (_, anomalies) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        let stale: Vec<&Value> = anomalies["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "device_stale")
            .collect();
        assert_eq!(stale.len(), 1, "[{backend}] one flag per stale spell: {anomalies}");
        assert_eq!(stale[0]["device"]["id"], json!(id));
        run_once(&app.state, Job::DeliverWebhooks).await.unwrap();
        let deliveries = receiver.requests("/hook");
        assert_eq!(deliveries.len(), 1, "[{backend}]");
        let event = verify_webhook(&secret, &deliveries[0]);
        assert_eq!(event["type"], "device.stale", "[{backend}] {event}");
        assert_eq!(event["data"]["device"]["id"], json!(id), "[{backend}] {event}");

        // The dashboard and the device page show it.
        let session = sign_in(&app, &f.acme.admin).await;
        let (status, html) = app.page(&session, "/fleet").await;
        assert_eq!(status, 200);
        assert!(
            html.contains("id=\"stale-devices\"") && html.contains("fw-cut-off"),
            "[{backend}]"
        );
        let (_, html) = app.page(&session, &format!("/fleet/devices/{id}")).await;
        assert!(
            html.contains("id=\"stale\""),
            "[{backend}] the device page shows it stale"
        );

        // Genuine answers again: the device says it is fresh, and the mark goes.
        mitm.pass(POLL);
        assert_eq!(agent.poll().await.unwrap().refused, None, "[{backend}]");
        assert!(!agent.freshness().stale(chrono::Utc::now()));
        agent.poll().await.unwrap();
        run_once(&app.state, Job::FlushObservations).await.unwrap();
        let (_, detail) = app.get(&format!("/api/v1/devices/{id}"), &f.acme.admin.token).await;
        assert!(detail["stale_since"].is_null(), "[{backend}] {detail}");
        let (_, html) = app.page(&session, "/fleet").await;
        assert!(!html.contains("id=\"stale-devices\""), "[{backend}]");
    }
}

#[actix_web::test]
async fn a_rollout_claim_the_log_does_not_back_is_refused() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let patch = publish_patch(&app, &f, "6.3.0r21", file_bytes(4096)).await;
        let (status, planned) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [{"percent": 100, "success_threshold": 90, "error_threshold": 5,
                                  "min_reports": 5, "install_timeout": "1h"}]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {planned}");
        let key = server_key(&app).await;
        let device = enrol_screenos(&app, &f, "fw1", "6.3.0r20").await;
        let mitm = Mitm::start(&app.base).await;
        let dir = tempfile::tempdir().unwrap();
        let settings = agent_config(&mitm.url(), dir.path(), &device, &key, "screenos", "6.3.0r20");
        let mut agent = Agent::start(settings).await.unwrap();

        // The genuine answer: nothing offered, held back by the draft, which the log shows.
        let polled = agent.poll().await.unwrap();
        assert_eq!(polled.refused, None, "[{backend}] {polled:?}");
        assert!(polled.offer.is_none(), "[{backend}]");
        let state_before = std::fs::read(dir.path().join("state.json")).unwrap();

        // The same entry claimed as a pause, or for another rollout: refused, and
        // nothing of the answer is taken.
        for (field, forged) in [
            ("state", json!("paused")),
            ("rollout", json!("01900000-0000-7000-8000-000000000000")),
        ] {
            mitm.edit(POLL, move |mut answer| {
                answer["held"][field] = forged.clone();
                answer
            });
            let polled = agent.poll().await.unwrap();
            assert!(
                refused(&polled).contains("a rollout holds the update back"),
                "[{backend}] forged {field}: {polled:?}"
            );
            assert_eq!(
                std::fs::read(dir.path().join("state.json")).unwrap(),
                state_before,
                "[{backend}] a refused answer changes nothing in the state"
            );
        }
        mitm.pass(POLL);
        assert_eq!(agent.poll().await.unwrap().refused, None, "[{backend}]");
    }
}
