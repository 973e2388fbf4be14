//! Maintenance windows on both databases: a device outside its windows is told to
//! download now and install when the next one opens, and asks again then; a cap on
//! a label's devices installing at once holds and frees a place when an install
//! ends; emergencies ignore the windows only of customers that opted in; the agent
//! keeps a deferred patch verified and installs it once its window is open; a bad
//! window is refused naming its field, and nothing of it is kept.
//!
//! The windows' times are set relative to the clock: one that opened at the top of
//! this hour and stays open two hours (open now), one that opens at the top of the
//! hour after next and stays open one hour (shut now). The arithmetic of windows
//! against a clock the test sets is in `domain::window`'s tests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use patchwarden::client::agent::{Agent, Identity, Installer, Outcome};
use serde_json::{json, Value};

use support::devices::{screenos_agent, server_key, TestDevice};
use support::patching::{enrollment_token, entitle_globex, file_bytes, fixture, publish_patch};
use support::{csrf_field, sign_in, TestApp};

/// A window that opened at the top of this hour (UTC) and is open two hours.
fn open_window(labels: Option<Value>, cap: Option<u32>) -> Value {
    let hour = Utc::now().hour();
    let mut window = json!({"schedule": format!("0 0 {hour} * * *"), "duration": "2h", "time_zone": "UTC"});
    if let Some(labels) = labels {
        window["labels"] = labels;
    }
    if let Some(cap) = cap {
        window["max_concurrent"] = json!(cap);
    }
    window
}

/// A window that opens at the top of the hour after next, in Berlin's time zone,
/// for an hour; and when that is.
fn shut_window() -> (Value, DateTime<Utc>) {
    let now = Utc::now();
    let opens = now
        .with_minute(0)
        .unwrap()
        .with_second(0)
        .unwrap()
        .with_nanosecond(0)
        .unwrap()
        + TimeDelta::hours(2);
    let local = opens.with_timezone(&chrono_tz::Europe::Berlin);
    let window = json!({"schedule": format!("0 0 {} * * *", local.hour()), "duration": "1h",
                        "time_zone": "Europe/Berlin"});
    (window, opens)
}

async fn enrol(app: &TestApp, admin: &str, name: &str, labels: Value) -> TestDevice {
    let body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": "6.3.0r20",
                      "labels": labels});
    let (status, device) = app.post("/api/v1/devices", admin, body).await;
    assert_eq!(status, 201, "[{}] {device}", app.backend.name());
    TestDevice {
        id: device["id"].as_str().unwrap().to_owned(),
        token: device["token"].as_str().unwrap().to_owned(),
    }
}

async fn poll(app: &TestApp, device: &TestDevice) -> Value {
    let (status, answer) = app
        .post("/api/v1/device/poll", &device.token, json!({"version": "6.3.0r20"}))
        .await;
    assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
    assert!(
        answer["update"].is_object(),
        "[{}] no offer: {answer}",
        app.backend.name()
    );
    answer
}

async fn put_windows(app: &TestApp, admin: &str, windows: Value) -> Value {
    let (status, body) = app.put("/api/v1/maintenance-windows", admin, windows).await;
    assert_eq!(status, 200, "[{}] {body}", app.backend.name());
    body
}

#[actix_web::test]
async fn windows_defer_installs_caps_hold_and_emergencies_ignore_only_the_windows_of_customers_that_opted_in() {
    // Long intervals, so that the interval a deferred device is given is the one
    // that brings it back at its window.
    for app in TestApp::each_with(&[("poll_interval", "7d"), ("emergency_poll_interval", "7d")]).await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        entitle_globex(&app, &f).await;
        let (shut, opens) = shut_window();
        let acme = &f.acme.admin.token;
        let windows = json!([shut.clone(), open_window(Some(json!({"site": "berlin"})), Some(2))]);
        assert_eq!(put_windows(&app, acme, windows.clone()).await, windows, "[{name}]");
        let (status, read) = app.get("/api/v1/maintenance-windows", acme).await;
        assert_eq!((status, &read), (200, &windows), "[{name}] as put");
        put_windows(&app, &f.globex.admin.token, json!([shut.clone()])).await;

        let plain = enrol(&app, acme, "fw-plain", json!({"site": "paris"})).await;
        let mut berlin = Vec::new();
        for n in 0..3 {
            berlin.push(enrol(&app, acme, &format!("fw-berlin-{n}"), json!({"site": "berlin"})).await);
        }
        let globex = enrol(&app, &f.globex.admin.token, "gx-0", json!({})).await;
        let patch = publish_patch(&app, &f, "6.3.0r21", file_bytes(2048)).await;

        // Outside its window: download now, install when it opens; asked back then,
        // within the window's first quarter.
        let answer = poll(&app, &plain).await;
        assert_eq!(answer["update"]["patch_id"], patch.as_str(), "[{name}] {answer}");
        assert_eq!(answer["update"]["install"], "deferred", "[{name}] {answer}");
        let after: DateTime<Utc> = answer["update"]["install_after"].as_str().unwrap().parse().unwrap();
        assert_eq!(after, opens, "[{name}] {answer}");
        let until = (opens - Utc::now()).num_seconds();
        let interval = answer["poll_interval_s"].as_i64().unwrap();
        assert!(
            interval >= until - 5 && interval <= until + 15 * 60 + 5,
            "[{name}] back in {interval} s, the window opens in {until} s"
        );

        // Berlin's window is open and lets two install at once.
        let first: Vec<Value> = vec![poll(&app, &berlin[0]).await, poll(&app, &berlin[1]).await];
        for answer in &first {
            assert_eq!(answer["update"]["install"], "now", "[{name}] {answer}");
            assert!(answer["update"].get("install_after").is_none(), "[{name}] {answer}");
        }
        let third = poll(&app, &berlin[2]).await;
        assert_eq!(
            third["update"]["install"], "deferred",
            "[{name}] a third at once: {third}"
        );
        assert!(third["poll_interval_s"].as_u64().unwrap() <= 60, "[{name}] {third}");
        let soon: DateTime<Utc> = third["update"]["install_after"].as_str().unwrap().parse().unwrap();
        assert!(soon <= Utc::now() + TimeDelta::seconds(61), "[{name}] {third}");
        // Asked again, the two keep their places and the third still waits.
        assert_eq!(poll(&app, &berlin[0]).await["update"]["install"], "now", "[{name}]");
        assert_eq!(
            poll(&app, &berlin[2]).await["update"]["install"],
            "deferred",
            "[{name}]"
        );
        // One install ends: its place is free.
        for state in ["downloading", "installing", "installed"] {
            let (status, body) = app
                .post(
                    "/api/v1/device/report",
                    &berlin[0].token,
                    json!({"patch_id": patch, "state": state, "version": if state == "installed" { json!("6.3.0r21") } else { Value::Null }}),
                )
                .await;
            assert!((200..300).contains(&status), "[{name}] {status} {body}");
        }
        assert_eq!(poll(&app, &berlin[2]).await["update"]["install"], "now", "[{name}]");

        // The patch fixes an emergency: windows still hold until a customer opts in,
        // and then only that customer's.
        assert_eq!(poll(&app, &globex).await["update"]["install"], "deferred", "[{name}]");
        let (status, policy) = app.get("/api/v1/emergency-policy", acme).await;
        assert_eq!((status, &policy), (200, &json!({"ignore_windows": false})), "[{name}]");
        let (status, policy) = app
            .put("/api/v1/emergency-policy", acme, json!({"ignore_windows": true}))
            .await;
        assert_eq!((status, &policy), (200, &json!({"ignore_windows": true})), "[{name}]");
        assert_eq!(
            poll(&app, &plain).await["update"]["install"],
            "now",
            "[{name}] opted in"
        );
        assert_eq!(
            poll(&app, &globex).await["update"]["install"],
            "deferred",
            "[{name}] globex did not opt in"
        );
        let (status, body) = app
            .put("/api/v1/emergency-policy", acme, json!({"ignore_windows": false}))
            .await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(
            poll(&app, &plain).await["update"]["install"],
            "deferred",
            "[{name}] opted out"
        );

        // No windows: installs whenever offered.
        put_windows(&app, acme, json!([])).await;
        assert_eq!(poll(&app, &plain).await["update"]["install"], "now", "[{name}]");
    }
}

#[actix_web::test]
async fn the_agent_keeps_a_deferred_patch_verified_and_installs_it_once_its_window_opens() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let (shut, _) = shut_window();
        put_windows(&app, &f.acme.admin.token, json!([shut])).await;
        let bytes = file_bytes(30_000);
        let patch = publish_patch(&app, &f, "6.3.0r21", bytes.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let installed = dir.path().join("installed.bin");
        let mut config = screenos_agent(
            &app.base,
            dir.path(),
            Identity::Enrol(enrollment_token(&app, &f, 1).await),
            &server_key(&app).await,
            "6.3.0r20",
        );
        config.installer = Installer::Command(vec![
            "sh".into(),
            "-c".into(),
            "cp \"$PATCHWARDEN_FILE\" \"$0\"".into(),
            installed.to_string_lossy().into_owned(),
        ]);
        let mut agent = Agent::start(config).await.unwrap();
        let offer = agent.poll().await.unwrap().offer.expect("offered");
        assert_eq!(offer.patch_id, patch);
        let outcome = agent.apply(&offer).await.unwrap();
        assert!(matches!(outcome, Outcome::Deferred(_)), "[{name}] {outcome:?}");
        assert!(!installed.exists(), "[{name}] installed outside the window");
        assert!(
            agent.state().pending.as_ref().is_some_and(|p| p.ready),
            "[{name}] the verified download is kept"
        );
        assert_eq!(agent.running().version, "6.3.0r20");
        let (status, device) = app
            .get(
                &format!("/api/v1/devices/{}", agent.device_id().unwrap()),
                &f.acme.admin.token,
            )
            .await;
        assert_eq!(status, 200, "{device}");
        assert_eq!(device["report"]["state"], "downloaded", "[{name}] {device}");

        // The window is open now: the kept file is installed.
        put_windows(&app, &f.acme.admin.token, json!([open_window(None, None)])).await;
        let offer = agent.poll().await.unwrap().offer.expect("still offered");
        assert_eq!(offer.install, patchwarden::api::device::Install::Now, "[{name}]");
        let outcome = agent.apply(&offer).await.unwrap();
        let Outcome::Installed { fetched, .. } = outcome else {
            panic!("[{name}] not installed: {outcome:?}");
        };
        assert_eq!(fetched.len, bytes.len() as u64, "[{name}]");
        assert_eq!(std::fs::read(&installed).unwrap(), bytes, "[{name}]");
        assert_eq!(agent.running().version, "6.3.0r21");
    }
}

#[actix_web::test]
async fn a_bad_window_is_refused_naming_its_field_and_nothing_of_it_is_kept() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let acme = &f.acme.admin.token;
        let good = open_window(None, Some(3));
        put_windows(&app, acme, json!([good.clone()])).await;
        let with = |field: &str, value: Value| {
            let mut window = good.clone();
            window[field] = value;
            json!([good.clone(), window])
        };
        for (body, field) in [
            (with("time_zone", json!("Mars/Olympus")), "[1].time_zone"),
            (with("schedule", json!("0 0 25 * * *")), "[1].schedule"),
            (with("schedule", json!("nightly")), "[1].schedule"),
            (with("duration", json!("30s")), "[1].duration"),
            (with("duration", json!("soon")), "[1].duration"),
            (with("max_concurrent", json!(0)), "[1].max_concurrent"),
            (with("labels", json!({"bad name!": "x"})), "[1].labels"),
            (json!(vec![good.clone(); 33]), "windows"),
        ] {
            let (status, answer) = app.put("/api/v1/maintenance-windows", acme, body.clone()).await;
            assert_eq!(status, 422, "[{name}] {body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "[{name}] {answer}");
        }
        for body in [
            with("color", json!("red")),
            with("max_concurrent", json!("three")),
            json!({"windows": []}),
        ] {
            let (status, answer) = app.put("/api/v1/maintenance-windows", acme, body.clone()).await;
            assert!((400..500).contains(&status), "[{name}] {body}: {status} {answer}");
        }
        let (status, answer) = app
            .put("/api/v1/emergency-policy", acme, json!({"ignore_windows": "yes"}))
            .await;
        assert!((400..500).contains(&status), "[{name}] {status} {answer}");
        let (status, _) = app.put("/api/v1/maintenance-windows", &f.vendor.token, json!([])).await;
        assert_eq!(status, 403, "[{name}] the vendor set a customer's windows");
        let (status, read) = app.get("/api/v1/maintenance-windows", acme).await;
        assert_eq!(
            (status, read),
            (200, json!([good])),
            "[{name}] nothing of the refused kept"
        );
        let (status, read) = app.get("/api/v1/emergency-policy", acme).await;
        assert_eq!((status, read), (200, json!({"ignore_windows": false})), "[{name}]");
    }
}

#[actix_web::test]
async fn a_customer_sets_its_windows_and_holds_its_devices_back_on_its_screens() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        for n in 0..4 {
            app.enrol_device(&f.acme.admin.token, &format!("fw-{n}"), "6.3.0r20")
                .await;
        }
        let session = sign_in(&app, &f.acme.admin).await;
        let (status, page) = app.page(&session, "/fleet/windows").await;
        assert_eq!(status, 200, "[{name}] {page}");
        assert!(page.contains("id=\"no-windows\""), "[{name}]");
        let csrf = csrf_field(&page);
        let window = |zone: &str, labels: &str| {
            vec![
                ("csrf_token", csrf.clone()),
                ("schedule", "0 0 2 * * Sat".to_owned()),
                ("duration", "4h".to_owned()),
                ("time_zone", zone.to_owned()),
                ("labels", labels.to_owned()),
                ("max_concurrent", "5".to_owned()),
            ]
        };
        // A bad time zone comes back named, hostile text escaped; nothing is kept.
        let (status, _, body) = app
            .post_form(&session, "/fleet/windows", &window("<script>x</script>", ""))
            .await;
        assert_eq!(status, 422, "[{name}] {body}");
        assert!(body.contains("is not an IANA time zone"), "[{name}]");
        assert!(!body.contains("<script>x"), "[{name}] unescaped");
        let (status, _, _) = app.post_form(&session, "/fleet/windows", &window("UTC", "")[1..]).await;
        assert_eq!(status, 403, "[{name}] without the CSRF token");
        let (status, _, body) = app
            .post_form(&session, "/fleet/windows", &window("Europe/Berlin", "site=berlin"))
            .await;
        assert_eq!(status, 303, "[{name}] {body}");
        let (_, windows) = app.get("/api/v1/maintenance-windows", &f.acme.admin.token).await;
        assert_eq!(
            windows,
            json!([{"labels": {"site": "berlin"}, "schedule": "0 0 2 * * Sat", "duration": "4h",
                    "time_zone": "Europe/Berlin", "max_concurrent": 5}]),
            "[{name}]"
        );
        let page = app.page(&session, "/fleet/windows").await.1;
        assert!(
            page.contains("site=berlin") && page.contains("opens 20") && page.contains(" UTC (in "),
            "[{name}] {page}"
        );
        let policy = [("csrf_token", csrf.as_str()), ("ignore_windows", "on")];
        assert_eq!(
            app.post_form(&session, "/fleet/emergency-policy", &policy).await.0,
            303,
            "[{name}]"
        );
        let (_, read) = app.get("/api/v1/emergency-policy", &f.acme.admin.token).await;
        assert_eq!(read, json!({"ignore_windows": true}), "[{name}]");
        // Another customer's admin removes "window 0": its own list has none, and
        // acme's window stays.
        let globex = sign_in(&app, &f.globex.admin).await;
        let globex_page = app.page(&globex, "/fleet/windows").await.1;
        assert!(
            globex_page.contains("id=\"no-windows\""),
            "[{name}] globex sees acme's windows"
        );
        let theirs = csrf_field(&globex_page);
        let (status, _, _) = app
            .post_form(&globex, "/fleet/windows/0/delete", &[("csrf_token", theirs.as_str())])
            .await;
        assert_eq!(status, 404, "[{name}]");
        let (_, kept) = app.get("/api/v1/maintenance-windows", &f.acme.admin.token).await;
        assert_eq!(kept.as_array().unwrap().len(), 1, "[{name}] {kept}");
        let remove = [("csrf_token", csrf.as_str())];
        assert_eq!(
            app.post_form(&session, "/fleet/windows/0/delete", &remove).await.0,
            303,
            "[{name}]"
        );
        let (_, windows) = app.get("/api/v1/maintenance-windows", &f.acme.admin.token).await;
        assert_eq!(windows, json!([]), "[{name}]");

        // A running rollout: the customer sees its devices in it and holds them back.
        let patch = support::patching::draft(&app, &f, None).await;
        let (status, body) = support::patching::upload_file(&app, &f.vendor.token, &patch, file_bytes(1024)).await;
        assert_eq!(status, 200, "[{name}] {body}");
        let body = json!({"waves": [{"percent": 50, "success_threshold": 90, "error_threshold": 10,
                                     "min_reports": 5, "install_timeout": "1h"}]});
        let (status, planned) = app
            .post(&format!("/api/v1/patches/{patch}/rollouts"), &f.vendor.token, body)
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        let id = planned["id"].as_str().unwrap().to_owned();
        let page = app.page(&session, "/fleet/rollouts").await.1;
        assert!(
            page.contains("id=\"no-rollouts\""),
            "[{name}] a draft patch's rollout shown"
        );
        let (status, body) = app
            .post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "[{name}] {body}");
        let (status, body) = app
            .post(&format!("/api/v1/rollouts/{id}/start"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 200, "[{name}] {body}");
        let (status, page) = app.page(&session, "/fleet/rollouts").await;
        assert_eq!(status, 200, "[{name}]");
        assert!(page.contains(&format!("id=\"rollout-{id}\"")), "[{name}] {page}");
        assert!(
            page.contains("the vendor&#x27;s plan") || page.contains("the vendor's plan"),
            "[{name}]"
        );
        let choice = format!("/fleet/rollouts/{id}/choice");
        let bad = [("csrf_token", csrf.as_str()), ("choice", "everything")];
        let (status, _, body) = app.post_form(&session, &choice, &bad).await;
        assert_eq!(status, 422, "[{name}] {body}");
        let hold = [("csrf_token", csrf.as_str()), ("choice", "hold")];
        assert_eq!(app.post_form(&session, &choice, &hold).await.0, 303, "[{name}]");
        let (_, mine) = app
            .get(&format!("/api/v1/rollouts/{id}/customer"), &f.acme.admin.token)
            .await;
        assert_eq!(mine["hold"], true, "[{name}] {mine}");
        let page = app.page(&session, "/fleet/rollouts").await.1;
        assert!(page.contains("held back"), "[{name}]");
        // Another customer sees none of it.
        let other = sign_in(&app, &f.globex.admin).await;
        let page = app.page(&other, "/fleet/rollouts").await.1;
        assert!(!page.contains(&id), "[{name}] globex sees acme's rollout");
        let theirs = csrf_field(&page);
        let hold = [("csrf_token", theirs.as_str()), ("choice", "hold")];
        let (status, _, _) = app.post_form(&other, &choice, &hold).await;
        assert!(
            status == 404 || status == 422,
            "[{name}] globex chose in a rollout it cannot see: {status}"
        );
    }
}
