//! The holes closed before the fleet, each shown on every backend: the signing key
//! is never replaced silently, login limits hold behind a proxy and under a flood,
//! a patch never signs a reference to an unpublished advisory or bytes other than
//! those recorded, a password change ends sessions (and tokens, when asked), HSTS
//! under https, and stored files no patch references are swept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::patching::{draft, file_bytes, fixture, upload_file};
use support::process::{patchwarden, run, text};
use support::{error_code, sign_in, TestApp};

use patchwarden::db::models::SigningKeyRecord;
use patchwarden::signing::{self, Signer};
use patchwarden::state::AppState;

fn key_records(records: &[SigningKeyRecord]) -> Vec<(String, bool)> {
    records
        .iter()
        .map(|k| (k.key_id.clone(), k.retired_at.is_none()))
        .collect()
}

#[actix_web::test]
async fn the_server_refuses_to_start_without_its_signing_key() {
    for app in TestApp::each().await {
        let active = app.state.signer.key_id().to_owned();
        let keys_dir = app.config.keys_dir.clone();

        // The keys volume was not mounted: the directory is empty.
        std::fs::remove_dir_all(&keys_dir).unwrap();
        let err = AppState::build(app.config.clone())
            .await
            .err()
            .expect("started without its key");
        let message = format!("{err:#}");
        assert!(message.contains(&active) && message.contains("refusing"), "{message}");
        assert!(
            !keys_dir.join(signing::SECRET_KEY_FILE).exists(),
            "a new key was created in place of the real one"
        );

        // Another instance's files hold a different key, introduced by nothing.
        let stranger = Signer::generate(&keys_dir, None).unwrap();
        let err = AppState::build(app.config.clone())
            .await
            .err()
            .expect("started with a stranger's key");
        let message = format!("{err:#}");
        assert!(
            message.contains(stranger.key_id()) && message.contains("no rotation statement"),
            "{message}"
        );

        // The database still calls the real key active, and nothing else.
        let records = app.db(|conn| Ok(SigningKeyRecord::list(conn)?)).await;
        assert_eq!(key_records(&records), [(active.clone(), true)]);
        let (status, keys) = app.get_text("/api/v1/keys").await;
        assert_eq!(status, 200);
        assert!(keys.contains(&active) && !keys.contains(stranger.key_id()), "{keys}");
    }
}

#[actix_web::test]
async fn a_rotation_is_accepted_and_leaves_no_retired_secret_key() {
    for app in TestApp::each().await {
        let first = app.state.signer.key_id().to_owned();
        let keys_dir = app.config.keys_dir.clone();
        let (second, _) = signing::rotate(&keys_dir, None, None, "2026-11-28T00:00:00Z", None).unwrap();
        // Two rotations while the server was down: the chain leads back to the active key.
        let (third, _) = signing::rotate(&keys_dir, None, None, "2026-11-29T00:00:00Z", None).unwrap();
        let restarted = AppState::build(app.config.clone()).await.expect("a rotated key starts");
        assert_eq!(restarted.signer.key_id(), third.key_id());

        let mut retired: Vec<String> = std::fs::read_dir(keys_dir.join("retired"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        retired.sort();
        let mut expected = vec![format!("{first}.pub"), format!("{}.pub", second.key_id())];
        expected.sort();
        assert_eq!(retired, expected, "only public keys stay behind");

        let records = app.db(|conn| Ok(SigningKeyRecord::list(conn)?)).await;
        let mut active: Vec<String> = records
            .iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.key_id.clone())
            .collect();
        active.sort();
        assert_eq!(active, [third.key_id().to_owned()]);
        assert_eq!(records.len(), 3);
    }
}

async fn login(app: &TestApp, email: &str, forwarded: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url("/api/v1/session"))
        .header("x-forwarded-for", forwarded)
        .json(&json!({"email": email, "password": "not the password"}))
        .send()
        .await
        .unwrap();
    support::status_and_json(response).await
}

#[actix_web::test]
async fn login_limits_count_the_proxys_hop_not_the_one_the_client_wrote() {
    let settings = [("trust_proxy_headers", "true"), ("login_attempts_per_minute", "1")];
    for app in TestApp::each_with(&settings).await {
        // One address (as the proxy saw it) may try four accounts a minute; the client
        // writes a new first hop each time, which must not buy it a new budget.
        let mut statuses = Vec::new();
        for n in 0..5 {
            let forwarded = format!("192.0.2.{n}, 203.0.113.7");
            statuses.push(login(&app, &format!("nobody{n}@acme.example"), &forwarded).await.0);
        }
        assert_eq!(statuses, [401, 401, 401, 401, 429]);
        // Another client behind the same proxy has its own budget.
        assert_eq!(login(&app, "nobody9@acme.example", "203.0.113.8").await.0, 401);
    }
}

#[actix_web::test]
async fn oversized_emails_are_refused_before_the_limiter_counts_them() {
    for app in TestApp::each_with(&[("login_attempts_per_minute", "1")]).await {
        let long = format!("{}@acme.example", "a".repeat(300));
        for _ in 0..6 {
            let (status, body) = login(&app, &long, "ignored").await;
            assert_eq!((status, error_code(&body)), (422, "invalid"), "{body}");
            assert_eq!(body["error"]["field"], "email");
        }
        // The budget of this address is untouched.
        assert_eq!(login(&app, "someone@acme.example", "ignored").await.0, 401);
    }
}

#[actix_web::test]
async fn a_patch_cannot_sign_a_reference_to_an_unpublished_advisory() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let body = json!({
            "title": "A second issue, still in review", "summary": "Not public yet.",
            "cvss_v3": "CVSS:3.1/AV:N/AC:H/PR:H/UI:N/S:U/C:L/I:L/A:N",
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
        });
        let (status, pending) = app.post("/api/v1/advisories", &f.vendor.token, body).await;
        assert_eq!(status, 201, "{pending}");
        let pending_id = pending["id"].as_str().unwrap().to_owned();
        let (status, created) = app
            .post(
                "/api/v1/patches",
                &f.vendor.token,
                json!({
                    "product": "screenos", "version": "6.3.0r21",
                    "applies_to": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}],
                    "fixes": [f.advisory, pending_id], "filename": "screenos-6.3.0r21.bin"
                }),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(upload_file(&app, &f.vendor.token, &id, file_bytes(4096)).await.0, 200);

        let (status, body) = app
            .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(&pending_id),
            "{body}"
        );
        let (_, patch) = app.get(&format!("/api/v1/patches/{id}"), &f.vendor.token).await;
        assert_eq!(patch["state"], "draft");
        assert!(patch["signature"].is_null());

        let (status, published) = app
            .post(
                &format!("/api/v1/advisories/{pending_id}/publish"),
                &f.vendor.token,
                json!({}),
            )
            .await;
        assert_eq!(status, 201, "{published}");
        let public_id = published["id"].as_str().unwrap().to_owned();
        let (status, patch) = app
            .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "{patch}");
        let signature = patch["signature"].as_str().unwrap();
        let comment = signature.lines().find(|l| l.starts_with("trusted comment:")).unwrap();
        assert!(
            comment.contains(&public_id) && comment.contains(&f.advisory),
            "{comment}"
        );
        assert!(!comment.contains(&pending_id), "{comment}");
    }
}

#[actix_web::test]
async fn publishing_refuses_a_stored_file_that_is_not_the_one_recorded() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let bytes = file_bytes(64 * 1024);
        let sha256 = patchwarden::secrets::sha256_hex(&bytes);
        let id = draft(&app, &f, Some(sha256.clone())).await;
        assert_eq!(upload_file(&app, &f.vendor.token, &id, bytes.clone()).await.0, 200);

        // Someone with access to the storage swaps the bytes.
        let stored = app
            .data_dir
            .path()
            .join("patches/sha256")
            .join(&sha256[..2])
            .join(&sha256);
        let mut swapped = bytes.clone();
        swapped[100] ^= 0xff;
        std::fs::write(&stored, &swapped).unwrap();

        let (status, body) = app
            .post(&format!("/api/v1/patches/{id}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&sha256) && message.contains("not signed"), "{message}");
        let (_, patch) = app.get(&format!("/api/v1/patches/{id}"), &f.vendor.token).await;
        assert_eq!(patch["state"], "draft");
        assert!(patch["signature"].is_null(), "a signature was stored: {patch}");
    }
}

#[actix_web::test]
async fn set_password_ends_sessions_and_on_request_revokes_tokens() {
    for app in TestApp::each().await {
        let acme = app.with_customer("acme").await;
        let cookie = sign_in(&app, &acme.admin).await;
        let session_alive = |cookie: String| {
            let request = app.client.get(app.url("/api/v1/me")).header("cookie", cookie);
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(session_alive(cookie.clone()).await, 200);

        let env = [("PATCHWARDEN_DATABASE_URL", app.database_url.as_str())];
        let dir = app.data_dir.path();
        let set = |extra: &[&str]| {
            let mut args = vec![
                "user",
                "set-password",
                "--email",
                "admin@acme.example",
                "--password-stdin",
            ];
            args.extend_from_slice(extra);
            run(
                patchwarden(dir, &env).args(&args),
                Some("a brand new long passphrase\n"),
            )
        };
        let out = set(&[]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("1 session(s) ended, 0 token(s) revoked"),
            "{}",
            text(&out.stdout)
        );
        assert_eq!(
            session_alive(cookie).await,
            401,
            "the old session survived the password change"
        );
        assert_eq!(app.get("/api/v1/me", &acme.admin.token).await.0, 200);

        let out = set(&["--revoke-tokens"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("1 token(s) revoked"),
            "{}",
            text(&out.stdout)
        );
        assert_eq!(app.get("/api/v1/me", &acme.admin.token).await.0, 401);
    }
}

#[actix_web::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    for (public_url, expected) in [("https://updates.example.com", true), ("http://127.0.0.1:8080", false)] {
        for app in TestApp::each_with(&[("public_url", public_url)]).await {
            let response = app.client.get(app.url("/healthz")).send().await.unwrap();
            let hsts = response.headers().get("strict-transport-security");
            assert_eq!(hsts.is_some(), expected, "{public_url}: {hsts:?}");
            if let Some(value) = hsts {
                assert!(value.to_str().unwrap().contains("max-age=31536000"));
            }
        }
    }
}

#[test]
fn plain_http_beyond_loopback_is_warned_about() {
    let config = |bind: &str, public: &str| {
        let mut raw = patchwarden::config::RawSettings::default();
        raw.set("bind", bind).unwrap();
        raw.set("public_url", public).unwrap();
        raw.validate().unwrap()
    };
    assert!(patchwarden::server::warn_about_exposure(&config(
        "0.0.0.0:8080",
        "http://updates.example.com"
    )));
    assert!(!patchwarden::server::warn_about_exposure(&config(
        "0.0.0.0:8080",
        "https://updates.example.com"
    )));
    assert!(!patchwarden::server::warn_about_exposure(&config(
        "127.0.0.1:8080",
        "http://127.0.0.1:8080"
    )));
}

#[actix_web::test]
async fn the_sweep_removes_stored_files_no_patch_references() {
    use patchwarden::jobs::{run_once, Job};
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let id = draft(&app, &f, None).await;
        let first = file_bytes(10_000);
        let replacement = file_bytes(12_000);
        assert_eq!(upload_file(&app, &f.vendor.token, &id, first.clone()).await.0, 200);
        assert_eq!(
            upload_file(&app, &f.vendor.token, &id, replacement.clone()).await.0,
            200
        );
        let path_of = |bytes: &[u8]| {
            let sha = patchwarden::secrets::sha256_hex(bytes);
            app.data_dir.path().join("patches/sha256").join(&sha[..2]).join(sha)
        };
        let (old, current) = (path_of(&first), path_of(&replacement));
        assert!(old.is_file() && current.is_file());

        // Within the grace period an unreferenced file stays: its upload may not be recorded yet.
        assert_eq!(run_once(&app.state, Job::SweepFiles).await.unwrap(), 0);
        assert!(old.is_file());

        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        for path in [&old, &current] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        assert_eq!(run_once(&app.state, Job::SweepFiles).await.unwrap(), 1);
        assert!(!old.exists(), "the replaced upload's file is still stored");
        assert!(current.is_file(), "the draft's own file was removed");
        assert_eq!(
            run_once(&app.state, Job::SweepFiles).await.unwrap(),
            0,
            "a second run finds nothing"
        );
    }
}

#[actix_web::test]
async fn an_idle_upload_is_swept_by_the_job_run_from_the_shell() {
    use diesel::prelude::*;
    use patchwarden::db::schema::patch_uploads;
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let id = draft(&app, &f, None).await;
        let (status, body) = app
            .post(
                &format!("/api/v1/patches/{id}/upload"),
                &f.vendor.token,
                json!({"size": 100}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let env = [
            ("PATCHWARDEN_DATABASE_URL", app.database_url.as_str()),
            ("PATCHWARDEN_DATA_DIR", app.data_dir.path().to_str().unwrap()),
            ("PATCHWARDEN_KEYS_DIR", app.config.keys_dir.to_str().unwrap()),
        ];
        let dir = app.data_dir.path();
        // Runs the sweep from the shell; returns what it says it removed.
        let sweep = || {
            let out = run(patchwarden(dir, &env).args(["job", "run", "sweep-uploads"]), None);
            assert!(out.status.success(), "{}", text(&out.stderr));
            text(&out.stdout).trim().to_owned()
        };
        let upload_url = format!("/api/v1/patches/{id}/upload");
        assert_eq!(sweep(), "sweep-uploads: 0 item(s)");
        assert_eq!(app.get(&upload_url, &f.vendor.token).await.0, 200);

        let a_day_ago = patchwarden::db::models::now() - chrono::TimeDelta::hours(25);
        app.db(move |conn| {
            Ok(diesel::update(patch_uploads::table)
                .set(patch_uploads::updated_at.eq(a_day_ago))
                .execute(conn)?)
        })
        .await;
        assert_eq!(sweep(), "sweep-uploads: 1 item(s)");
        assert_eq!(app.get(&upload_url, &f.vendor.token).await.0, 404);

        let out = run(patchwarden(dir, &env).args(["job", "run", "tidy-up"]), None);
        assert!(!out.status.success());
        assert!(
            text(&out.stderr).contains("sweep-uploads, sweep-files"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[actix_web::test]
async fn an_unknown_role_in_the_database_is_an_error_not_a_customer_admin() {
    use diesel::connection::SimpleConnection;
    for app in TestApp::each().await {
        let acme = app.with_customer("acme").await;
        let user_id = acme.admin.user_id.clone();
        // A newer release wrote a role this one does not know (the CHECK constraint is
        // what that release would have changed).
        app.db(move |conn| {
            let relax = match conn {
                patchwarden::db::DbConnection::Sqlite(_) => "PRAGMA ignore_check_constraints = ON;",
                patchwarden::db::DbConnection::Postgres(_) => {
                    "ALTER TABLE users DROP CONSTRAINT users_role_check, DROP CONSTRAINT users_check;"
                }
            };
            conn.batch_execute(relax)?;
            conn.batch_execute(&format!("UPDATE users SET role = 'auditor' WHERE id = '{user_id}'"))?;
            Ok(())
        })
        .await;
        let (status, body) = app.get("/api/v1/me", &acme.admin.token).await;
        assert_eq!((status, error_code(&body)), (500, "internal"), "{body}");
        assert!(!body.to_string().contains("auditor"), "the cause leaked: {body}");
    }
}
