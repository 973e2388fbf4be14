//! Scheduled and on-demand pulls against simulated devices on loopback, on every
//! backend: due pulls fire on schedule and feed exposure; every kind of failure is
//! recorded with its reason and none holds up the others; a failing device backs
//! off further each time and shows as unreachable; denied addresses are never
//! contacted (directly, through a name, or through a redirect); the pull token goes
//! to the device and nowhere else.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use diesel::prelude::*;
use patchwarden::db::schema::device_pulls;
use patchwarden::jobs::{run_once, start_jobs, Job};
use serde_json::{json, Value};
use support::endpoint::{Endpoint, Reply};
use support::patching::fixture;
use support::process::{patchwarden, run, text};
use support::{error_code, TestApp};

const TOKEN: &str = "device-secret-4b1d7c0e9f";

/// Enrols `name` pulled from `url`; the device's id.
async fn enrol_pulled(app: &TestApp, admin: &str, name: &str, url: &str, extra: Value) -> String {
    let mut body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": "6.3.0r20",
                          "pull_url": url});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, body) = app.post("/api/v1/devices", admin, body).await;
    assert_eq!(status, 201, "[{}] {body}", app.backend.name());
    body["id"].as_str().unwrap().to_owned()
}

async fn device(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/devices/{id}"), token).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn pull_now(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app.post(&format!("/api/v1/devices/{id}/pull"), token, json!({})).await;
    assert_eq!(status, 200, "[{}] pull: {body}", app.backend.name());
    body
}

/// Makes the device's next pull due now (as if its time had come).
async fn make_due(app: &TestApp, id: &str) {
    let id = id.to_owned();
    app.db(move |conn| {
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1);
        diesel::update(device_pulls::table.filter(device_pulls::device_id.eq(id)))
            .set(device_pulls::due_at.eq(past))
            .execute(conn)?;
        Ok(())
    })
    .await;
}

/// Lets go of every pull lease, as when they expire.
async fn release_leases(app: &TestApp) {
    app.db(|conn| {
        diesel::update(device_pulls::table)
            .set((
                device_pulls::lease_until.eq(None::<NaiveDateTime>),
                device_pulls::lease_holder.eq(None::<String>),
            ))
            .execute(conn)?;
        Ok(())
    })
    .await;
}

async fn pull_row(app: &TestApp, id: &str) -> (Option<NaiveDateTime>, Option<NaiveDateTime>, i32) {
    let id = id.to_owned();
    app.db(move |conn| {
        Ok(device_pulls::table
            .filter(device_pulls::device_id.eq(id))
            .select((
                device_pulls::due_at,
                device_pulls::last_attempt_at,
                device_pulls::failures,
            ))
            .first(conn)?)
    })
    .await
}

#[actix_web::test]
async fn scheduled_pulls_fire_feed_exposure_and_send_the_token_only_to_the_device() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let devices = Endpoint::start("127.0.0.1").await;
        devices.script("/fw-1", vec![Reply::version("6.3.0r20", None)]);
        let id = enrol_pulled(
            &app,
            &f.acme.admin.token,
            "fw-1",
            &devices.url("/fw-1"),
            json!({"pull_schedule": "* * * * * *", "pull_token": TOKEN}),
        )
        .await;
        let _jobs = start_jobs(app.state.clone().into_inner(), &[Job::PullDevices]);
        devices
            .wait_hits("/fw-1", 2, Duration::from_secs(10), "two scheduled pulls")
            .await;
        let first = devices.requests("/fw-1");
        assert_eq!(
            first[0].headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {TOKEN}").as_str()),
            "[{backend}] the device gets its token"
        );
        assert!(
            first[1].at - first[0].at >= Duration::from_millis(500),
            "[{backend}] one pull per second"
        );

        let exposure_path = format!("/api/v1/advisories/{}/exposure", f.advisory);
        let body = device(&app, &f.acme.admin.token, &id).await;
        assert_eq!(body["version_source"], "pull", "[{backend}] {body}");
        assert_eq!(body["pull"]["has_token"], true);
        assert!(body["pull"]["next_pull_at"].is_string());
        assert_eq!(
            app.get(&exposure_path, &f.acme.admin.token).await.1["affected"],
            1,
            "[{backend}]"
        );

        // The device moves to the fixed release: the next pull makes it fixed.
        devices.script("/fw-1", vec![Reply::version("6.3.0r21", None)]);
        let started = Instant::now();
        loop {
            if app.get(&exposure_path, &f.acme.admin.token).await.1["fixed"] == 1 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "[{backend}] not fixed after a pull"
            );
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            app.get(&exposure_path, &f.acme.admin.token).await.1["affected"],
            0,
            "[{backend}]"
        );
        // No install was reported: the change is flagged.
        let (_, anomalies) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        let kinds: Vec<&str> = anomalies["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["unannounced_change"], "[{backend}] {anomalies}");

        // The token is in no answer and on no page. (The scheduler stops, and its
        // lease on the device is let go, as when it expires.)
        drop(_jobs);
        release_leases(&app).await;
        let session = support::sign_in(&app, &f.acme.admin).await;
        let (_, page) = app.page(&session, &format!("/fleet/devices/{id}")).await;
        let (_, list) = app.get("/api/v1/devices", &f.acme.admin.token).await;
        let pulled = pull_now(&app, &f.acme.admin.token, &id).await;
        for shown in [
            device(&app, &f.acme.admin.token, &id).await.to_string(),
            list.to_string(),
            pulled.to_string(),
            page,
        ] {
            assert!(!shown.contains(TOKEN), "[{backend}] the pull token leaked: {shown}");
        }
        assert_eq!(pulled["version"], "6.3.0r21");
        assert_eq!(pulled["source"], "pull");
        let stored = {
            let id = id.clone();
            app.db(move |conn| {
                Ok(device_pulls::table
                    .filter(device_pulls::device_id.eq(id))
                    .select(device_pulls::token_sealed)
                    .first::<Option<String>>(conn)?)
            })
            .await
            .unwrap()
        };
        assert!(
            !stored.contains(TOKEN) && stored.starts_with("v1."),
            "[{backend}] sealed at rest"
        );

        // A pull from the shell, logging at debug level, prints no token either.
        // The command runs on a blocking thread: the simulated device answers on this one.
        let env = [
            ("PATCHWARDEN_DATABASE_URL", app.database_url.clone()),
            (
                "PATCHWARDEN_DATA_DIR",
                app.data_dir.path().to_string_lossy().into_owned(),
            ),
            (
                "PATCHWARDEN_KEYS_DIR",
                app.data_dir.path().join("keys").to_string_lossy().into_owned(),
            ),
            ("PATCHWARDEN_LOG_LEVEL", "debug".to_owned()),
            // The device answers on loopback, which pulls do not reach by default.
            ("PATCHWARDEN_OUTBOUND_DENY", support::TEST_OUTBOUND_DENY.to_owned()),
        ];
        let device_id = id.clone();
        let out = actix_web::rt::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            run(
                patchwarden(dir.path(), &env).args(["pull", "--device", &device_id]),
                None,
            )
        })
        .await
        .unwrap();
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "[{backend}] {stderr}");
        assert!(stdout.contains("\"version\":\"6.3.0r21\""), "[{backend}] {stdout}");
        assert!(stderr.contains("DEBUG"), "[{backend}] logging at debug level: {stderr}");
        assert!(
            !stdout.contains(TOKEN) && !stderr.contains(TOKEN),
            "[{backend}] the token was printed"
        );
        assert_eq!(
            devices.requests("/fw-1").last().unwrap().headers["authorization"],
            format!("Bearer {TOKEN}")
        );
    }
}

#[actix_web::test]
async fn every_failure_is_recorded_with_its_reason() {
    let settings = [
        ("pull_timeout", "700ms"),
        ("pull_connect_timeout", "300ms"),
        ("pull_retries", "2"),
        ("pull_retry_delay", "10ms"),
        ("pull_max_response_bytes", "1024"),
    ];
    for app in TestApp::each_with(&settings).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let devices = Endpoint::start("127.0.0.1").await;
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let huge = json!({"version": "6.3.0r20", "padding": "x".repeat(4096)}).to_string();
        devices.script("/ok", vec![Reply::version("6.3.0r20", Some(&"a".repeat(64)))]);
        devices.script("/error", vec![Reply::status(500)]);
        devices.script(
            "/garbage",
            vec![Reply::Text("<html>internal-admin-secret-41</html>".into())],
        );
        devices.script(
            "/other-shape",
            vec![Reply::Json(
                200,
                r#"{"admin_password": "internal-admin-secret-43"}"#.into(),
            )],
        );
        devices.script("/huge", vec![Reply::Json(200, huge)]);
        devices.script("/drip", vec![Reply::Drip(Duration::from_millis(100))]);
        devices.script("/hang", vec![Reply::Hang]);
        devices.script("/wrong-scheme", vec![Reply::version("internal-admin-secret-42!", None)]);
        devices.script("/unauthorized", vec![Reply::status(401)]);
        let cases = [
            ("ok", devices.url("/ok"), None),
            (
                "error",
                devices.url("/error"),
                Some(("status", "HTTP 500 (after 3 tries)")),
            ),
            ("garbage", devices.url("/garbage"), Some(("bad_json", "not {"))),
            (
                "other-shape",
                devices.url("/other-shape"),
                Some(("bad_json", "another shape")),
            ),
            (
                "huge",
                devices.url("/huge"),
                Some(("too_large", "longer than 1024 bytes")),
            ),
            ("drip", devices.url("/drip"), Some(("timeout", "in time"))),
            ("hang", devices.url("/hang"), Some(("timeout", "in time"))),
            (
                "refused",
                format!("http://{closed}/x"),
                Some(("refused", "refused (after 3 tries)")),
            ),
            (
                "wrong-scheme",
                devices.url("/wrong-scheme"),
                Some(("bad_json", "not a vendor version")),
            ),
            (
                "unauthorized",
                devices.url("/unauthorized"),
                Some(("status", "HTTP 401")),
            ),
        ];
        for (name, url, expected) in cases {
            let id = enrol_pulled(&app, &f.acme.admin.token, name, &url, json!({})).await;
            let pulled = pull_now(&app, &f.acme.admin.token, &id).await;
            match expected {
                None => {
                    assert_eq!(pulled["version"], "6.3.0r20", "[{backend}] {pulled}");
                    assert!(pulled.get("failure").is_none());
                }
                Some((reason, detail)) => {
                    assert_eq!(pulled["failure"]["reason"], reason, "[{backend}] {name}: {pulled}");
                    let said = pulled["failure"]["detail"].as_str().unwrap();
                    assert!(said.contains(detail), "[{backend}] {name}: {said}");
                    assert!(
                        !said.contains("internal-admin-secret"),
                        "[{backend}] {name}: the failure echoes the answer: {said}"
                    );
                    let body = device(&app, &f.acme.admin.token, &id).await;
                    assert_eq!(body["pull_failures"][0]["reason"], reason, "[{backend}] {body}");
                    assert_eq!(body["pull"]["failures"], 1);
                    assert!(body["pull"]["unreachable_since"].is_string(), "[{backend}] {body}");
                    assert_eq!(body["version"], "6.3.0r20", "[{backend}] a failure changes no version");
                }
            }
        }
        assert_eq!(devices.hits("/error"), 3, "[{backend}] a 500 is tried again, twice");
        assert_eq!(
            devices.hits("/garbage"),
            1,
            "[{backend}] a bad answer is not asked again at once"
        );
        assert_eq!(
            devices.hits("/unauthorized"),
            1,
            "[{backend}] a 401 is not worth retrying"
        );
    }
}

#[actix_web::test]
async fn a_slow_device_holds_up_no_other_pull() {
    for app in TestApp::each_with(&[("pull_timeout", "6s")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let devices = Endpoint::start("127.0.0.1").await;
        devices.script("/slow", vec![Reply::Hang]);
        devices.script("/quick", vec![Reply::version("6.3.0r20", None)]);
        let every_second = json!({"pull_schedule": "* * * * * *"});
        let slow = enrol_pulled(
            &app,
            &f.acme.admin.token,
            "slow",
            &devices.url("/slow"),
            every_second.clone(),
        )
        .await;
        enrol_pulled(&app, &f.acme.admin.token, "quick", &devices.url("/quick"), every_second).await;
        let _jobs = start_jobs(app.state.clone().into_inner(), &[Job::PullDevices]);
        devices
            .wait_hits("/slow", 1, Duration::from_secs(5), "the slow device is asked")
            .await;
        let asked = Instant::now();
        devices
            .wait_hits("/quick", 3, Duration::from_secs(5), "three pulls of the quick device")
            .await;
        let (_, attempted, _) = pull_row(&app, &slow).await;
        assert!(
            asked.elapsed() < Duration::from_secs(6) && attempted.is_none(),
            "[{backend}] the quick device was pulled while the slow one was still being waited for"
        );
        assert_eq!(
            devices.hits("/slow"),
            1,
            "[{backend}] a device being pulled is not pulled twice"
        );
    }
}

#[actix_web::test]
async fn a_failing_device_backs_off_further_each_time_and_shows_unreachable() {
    for app in TestApp::each_with(&[("pull_retries", "0")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let devices = Endpoint::start("127.0.0.1").await;
        devices.script("/down", vec![Reply::status(503)]);
        let id = enrol_pulled(
            &app,
            &f.acme.admin.token,
            "down",
            &devices.url("/down"),
            json!({"pull_schedule": "* * * * * *"}),
        )
        .await;
        let mut waits = Vec::new();
        for failures in 1..=4 {
            make_due(&app, &id).await;
            assert_eq!(run_once(&app.state, Job::PullDevices).await.unwrap(), 1);
            let (due, attempted, count) = pull_row(&app, &id).await;
            assert_eq!(count, failures, "[{backend}]");
            let wait = (due.unwrap() - attempted.unwrap()).num_milliseconds() as f64 / 1000.0;
            let base = 30.0 * 2f64.powi(failures - 1);
            assert!(
                (base * 0.74..=base * 1.26).contains(&wait),
                "[{backend}] after {failures} failures the next pull is {wait} s away, not about {base} s"
            );
            waits.push(wait);
        }
        assert!(waits.windows(2).all(|w| w[1] > w[0]), "[{backend}] {waits:?}");
        // Nothing is pulled before its time.
        assert_eq!(run_once(&app.state, Job::PullDevices).await.unwrap(), 0);
        assert_eq!(devices.hits("/down"), 4);

        let body = device(&app, &f.acme.admin.token, &id).await;
        assert_eq!(body["pull"]["failures"], 4);
        assert_eq!(
            body["pull_failures"][0]["times"], 4,
            "[{backend}] identical failures fold: {body}"
        );
        let since = body["pull"]["unreachable_since"].as_str().unwrap().to_owned();
        let session = support::sign_in(&app, &f.acme.admin).await;
        let (_, page) = app.page(&session, &format!("/fleet/devices/{id}")).await;
        assert!(page.contains("Unreachable since"), "[{backend}]");

        // It answers again: no longer unreachable, and the schedule applies again.
        devices.script("/down", vec![Reply::version("6.3.0r20", None)]);
        make_due(&app, &id).await;
        run_once(&app.state, Job::PullDevices).await.unwrap();
        let body = device(&app, &f.acme.admin.token, &id).await;
        assert!(
            body["pull"]["unreachable_since"].is_null(),
            "[{backend}] {body} (was {since})"
        );
        assert_eq!(body["pull"]["failures"], 0);
        let (due, attempted, _) = pull_row(&app, &id).await;
        assert!(
            (due.unwrap() - attempted.unwrap()).num_seconds() <= 2,
            "[{backend}] back on its schedule"
        );
    }
}

#[actix_web::test]
async fn denied_addresses_are_never_contacted() {
    let deny = "169.254.0.0/16,127.0.0.2/32";
    for app in TestApp::each_with(&[("outbound_deny", deny)]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let denied = Endpoint::start("127.0.0.2").await;
        denied.script("/fw", vec![Reply::version("6.3.0r20", None)]);
        let allowed = Endpoint::start("127.0.0.1").await;
        allowed.script("/bounce", vec![Reply::Redirect(302, denied.url("/fw"))]);

        // Set to a denied address: refused, naming the field.
        for url in [denied.url("/fw"), "http://169.254.169.254/latest/meta-data/".to_owned()] {
            let (status, body) = app
                .post(
                    "/api/v1/devices",
                    &f.acme.admin.token,
                    json!({"name": "fw", "product": "screenos", "pull_url": url}),
                )
                .await;
            assert_eq!(status, 422, "[{backend}] {body}");
            assert_eq!(body["error"]["field"], "pull_url");
            assert!(
                body["error"]["message"].as_str().unwrap().contains("denied network"),
                "{body}"
            );
        }

        // A redirect to it is not followed.
        let bounce = enrol_pulled(&app, &f.acme.admin.token, "bounce", &allowed.url("/bounce"), json!({})).await;
        let pulled = pull_now(&app, &f.acme.admin.token, &bounce).await;
        assert_eq!(pulled["failure"]["reason"], "status", "[{backend}] {pulled}");
        assert!(pulled["failure"]["detail"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"));
        assert_eq!(denied.hits("/fw"), 0, "[{backend}] the denied address was contacted");
    }
    // A name that resolves to a denied address is refused after resolution.
    for app in TestApp::each_with(&[("outbound_deny", "127.0.0.1/32,::1/128")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let device = Endpoint::start("127.0.0.1").await;
        device.script("/fw", vec![Reply::version("6.3.0r20", None)]);
        let url = format!("http://localhost:{}/fw", device.addr.port());
        // Checked when set, after resolution...
        let (status, body) = app
            .post(
                "/api/v1/devices",
                &f.acme.admin.token,
                json!({"name": "named", "product": "screenos", "pull_url": url}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("pull_url")),
            "[{backend}] {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("localhost resolves to a denied address"));
        // ...and again at connect time, for a name that resolved elsewhere (or, as
        // here, not at all) when it was set.
        let id = enrol_pulled(&app, &f.acme.admin.token, "named", "http://fw-1.invalid/fw", json!({})).await;
        let url_now = url.clone();
        let named = id.clone();
        app.db(move |conn| {
            diesel::update(device_pulls::table.filter(device_pulls::device_id.eq(named)))
                .set(device_pulls::url.eq(url_now))
                .execute(conn)?;
            Ok(())
        })
        .await;
        let pulled = pull_now(&app, &f.acme.admin.token, &id).await;
        assert_eq!(pulled["failure"]["reason"], "denied_address", "[{backend}] {pulled}");
        assert!(pulled["failure"]["detail"]
            .as_str()
            .unwrap()
            .contains("localhost resolves to denied addresses only"));
        assert_eq!(device.hits("/fw"), 0, "[{backend}] the denied address was contacted");
        // Both refusals are counted: when the URL was set and at connect time.
        assert_eq!(app.refusals("denied_address", "pull").await, 2, "[{backend}]");
    }
}

#[actix_web::test]
async fn bad_pull_settings_are_refused_naming_the_field() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let admin = &f.acme.admin.token;
        let cases = [
            (
                json!({"pull_url": "ftp://fw.example.net/version"}),
                "pull_url",
                "scheme `ftp`",
            ),
            (
                json!({"pull_url": "http://user:pw@fw.example.net/"}),
                "pull_url",
                "credentials",
            ),
            (json!({"pull_url": "not a url"}), "pull_url", "not a URL"),
            (json!({"pull_schedule": "0 * * * * *"}), "pull_url", "need a pull_url"),
            (
                json!({"pull_url": "http://fw.example.net/", "pull_schedule": "*/15 * * * *"}),
                "pull_schedule",
                "has 5 fields",
            ),
            (
                json!({"pull_url": "http://fw.example.net/", "pull_schedule": "0 */61 * * * *"}),
                "pull_schedule",
                "minutes field",
            ),
            (
                json!({"pull_url": "http://fw.example.net/", "pull_token": "has a space"}),
                "pull_token",
                "printable",
            ),
        ];
        for (fields, field, message) in cases {
            let mut body = json!({"name": "fw", "product": "screenos"});
            for (k, v) in fields.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (status, answer) = app.post("/api/v1/devices", admin, body).await;
            assert_eq!(status, 422, "[{backend}] {answer}");
            assert_eq!(answer["error"]["field"], field, "[{backend}] {answer}");
            let said = answer["error"]["message"].as_str().unwrap();
            assert!(said.contains(message), "[{backend}] {said}");
        }
        let (_, listed) = app.get("/api/v1/devices", admin).await;
        assert_eq!(listed["total"], 0, "[{backend}] nothing refused was kept");

        let (status, body) = app
            .put("/api/v1/pull-schedule", admin, json!({"schedule": "0 0 25 * * *"}))
            .await;
        assert_eq!(status, 422, "[{backend}] {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("hours field `25`"));
        let (status, body) = app
            .put("/api/v1/pull-schedule", admin, json!({"schedule": "0 */5 * * * *"}))
            .await;
        assert_eq!(
            (status, body["schedule"].as_str()),
            (200, Some("0 */5 * * * *")),
            "{body}"
        );

        // Devices without a schedule follow the customer's default.
        let devices = Endpoint::start("127.0.0.1").await;
        let id = enrol_pulled(&app, admin, "fw-default", &devices.url("/fw"), json!({})).await;
        let body = device(&app, admin, &id).await;
        assert!(body["pull"]["schedule"].is_null());
        let next: chrono::DateTime<chrono::Utc> = body["pull"]["next_pull_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(chrono::Timelike::minute(&next) % 5, 0, "[{backend}] {next}");
        assert_eq!(chrono::Timelike::second(&next), 0);

        // A customer admin of another customer sees nothing of it and cannot pull it.
        let (status, _) = app
            .post(&format!("/api/v1/devices/{id}/pull"), &f.globex.admin.token, json!({}))
            .await;
        assert_eq!(status, 404, "[{backend}]");
        let (status, body) = app
            .post(&format!("/api/v1/devices/{id}/pull"), &f.vendor.token, json!({}))
            .await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "[{backend}] {body}");
    }
}
