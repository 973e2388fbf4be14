//! Two server instances on one PostgreSQL database, as behind a load balancer: what
//! one instance changes reaches polls on the other within a second, through the
//! change counters both read. PostgreSQL only (SQLite is single-instance).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::patching::{file_bytes, fixture, publish_patch};
use support::{Backend, PgDatabase, TestApp};

/// Polls `token` on `app` until `done` holds for the answer; how long that took.
async fn until(app: &TestApp, token: &str, done: impl Fn(&Value) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = app
            .post("/api/v1/device/poll", token, json!({"version": "6.3.0r20"}))
            .await;
        if status == 200 && done(&body) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the other instance did not follow within 5 s: {status} {body}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn a_change_on_one_instance_reaches_polls_on_the_other_within_a_second() {
    support::on_backend(Backend::Postgres);
    let pg = PgDatabase::create();
    let url = pg.url.clone();
    let first_dir = tempfile::tempdir().unwrap();
    let keys = first_dir.path().join("keys").to_string_lossy().into_owned();
    let one = TestApp::start_on(Backend::Postgres, url.clone(), Some(pg), first_dir, &[]).await;
    let two = TestApp::start_on(
        Backend::Postgres,
        url,
        None,
        tempfile::tempdir().unwrap(),
        &[("keys_dir", &keys), ("jobs", "false")],
    )
    .await;

    let f = fixture(&one).await;
    let fix = publish_patch(&one, &f, "6.3.0r21", file_bytes(512)).await;
    let (status, device) = one
        .post(
            "/api/v1/devices",
            &f.acme.admin.token,
            json!({"name": "fw-1", "product": "screenos", "platform": "ssg-500", "version": "6.3.0r20"}),
        )
        .await;
    assert_eq!(status, 201, "{device}");
    let token = device["token"].as_str().unwrap();

    // Enrolled and published on one; known to the other within a second.
    let learnt = until(&two, token, |body| body["update"]["patch_id"] == fix.as_str()).await;
    assert!(
        learnt < Duration::from_secs(1),
        "enrolment reached the other instance after {learnt:?}"
    );

    // Yanked on one: the other stops offering it within a second.
    let (status, _) = one
        .post(
            &format!("/api/v1/patches/{fix}/yank"),
            &f.vendor.token,
            json!({"reason": "bad build"}),
        )
        .await;
    assert_eq!(status, 200);
    let yanked = until(&two, token, |body| body["update"].is_null()).await;
    assert!(
        yanked < Duration::from_secs(1),
        "the yank reached the other instance after {yanked:?}"
    );

    // Decommissioned on one: the token stops working on the other.
    let id = device["id"].as_str().unwrap();
    assert_eq!(
        one.delete(&format!("/api/v1/devices/{id}"), &f.acme.admin.token)
            .await
            .0,
        204
    );
    let started = Instant::now();
    loop {
        let (status, _) = two
            .post("/api/v1/device/poll", token, json!({"version": "6.3.0r20"}))
            .await;
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still {status} after {:?}",
            started.elapsed()
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}
