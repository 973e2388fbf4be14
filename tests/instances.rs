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

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn two_instances_pull_each_due_device_once_and_take_over_a_dead_ones_leases() {
    use patchwarden::jobs::{start_jobs, Job};
    use patchwarden::services::fleet::devices::{import, DeviceDraft};
    use support::endpoint::{Endpoint, Reply};

    const DEVICES: usize = 1000;
    support::on_backend(Backend::Postgres);
    let pg = PgDatabase::create();
    let url = pg.url.clone();
    let first_dir = tempfile::tempdir().unwrap();
    let keys = first_dir.path().join("keys").to_string_lossy().into_owned();
    let settings = [("pull_lease", "3s"), ("pull_per_host", "64"), ("pull_concurrency", "256")];
    let one = TestApp::start_on(Backend::Postgres, url.clone(), Some(pg), first_dir, &settings).await;
    let mut with_keys = settings.to_vec();
    with_keys.push(("keys_dir", &keys));
    let two = TestApp::start_on(Backend::Postgres, url, None, tempfile::tempdir().unwrap(), &with_keys).await;

    fixture(&one).await;
    let devices = Endpoint::start("127.0.0.1").await;
    let drafts: Vec<DeviceDraft> = (0..DEVICES)
        .map(|n| {
            devices.script(&format!("/d/{n}"), vec![Reply::version("6.3.0r20", None)]);
            serde_json::from_value(json!({
                "name": format!("fw-{n:04}"), "product": "screenos", "version": "6.3.0r20",
                "pull_url": devices.url(&format!("/d/{n}")), "pull_schedule": "*/2 * * * * *",
            }))
            .unwrap()
        })
        .collect();
    let (sealing, policy) = (one.state.sealing.clone(), one.config.outbound.clone());
    one.db(move |conn| import(conn, &sealing, &policy, "acme", drafts).map(drop)).await;

    let hits = |devices: &Endpoint| -> Vec<Vec<Instant>> {
        let mut by_device = vec![Vec::new(); DEVICES];
        for request in devices.all_requests() {
            let n: usize = request.path.trim_start_matches("/d/").parse().unwrap();
            by_device[n].push(request.at);
        }
        by_device
    };
    let wait_for = |what: &str, deadline: Duration, started: Instant, done: bool| {
        assert!(started.elapsed() < deadline, "{what} not within {deadline:?}");
        done
    };

    let runner_one = start_jobs(one.state.clone().into_inner(), &[Job::PullDevices]);
    let runner_two = start_jobs(two.state.clone().into_inner(), &[Job::PullDevices]);
    let started = Instant::now();
    loop {
        let done = hits(&devices).iter().all(|h| h.len() >= 4);
        if wait_for("four pulls of every device", Duration::from_secs(30), started, done) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // One instance dies with pulls claimed; the other takes its leases over.
    drop(runner_one);
    let killed = Instant::now();
    loop {
        let done = hits(&devices)
            .iter()
            .all(|h| h.iter().filter(|at| **at > killed).count() >= 3);
        if wait_for("three pulls of every device after the kill", Duration::from_secs(30), killed, done) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    drop(runner_two);

    let by_device = hits(&devices);
    let mut total = 0;
    for (n, at) in by_device.iter().enumerate() {
        let mut at = at.clone();
        at.sort();
        total += at.len();
        for pair in at.windows(2) {
            let gap = pair[1] - pair[0];
            // Slots are two seconds apart: a slot pulled twice shows as a short gap.
            assert!(gap >= Duration::from_millis(1000), "device {n} was pulled twice for one slot ({gap:?})");
            // A skipped slot shows as a long gap; after the kill a slot may wait for
            // the dead instance's lease (3 s) to run out.
            let limit = if pair[1] < killed { 3_200 } else { 6_500 };
            assert!(gap <= Duration::from_millis(limit), "device {n} missed a slot ({gap:?})");
        }
    }
    assert!(total >= DEVICES * 7, "{total} pulls");
}
