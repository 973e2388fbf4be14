//! Two server instances on one PostgreSQL database, as behind a load balancer: what
//! one instance changes reaches polls on the other within a second, through the
//! change counters both read. PostgreSQL only (SQLite is single-instance).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use patchwarden::api::device::{Poll, PollResponse};
use serde_json::json;
use support::devices::TestDevice;
use support::patching::{file_bytes, fixture, publish_patch};
use support::{Backend, PgDatabase, TestApp};

/// Polls as `device` on `app`, one poll after the other, until `done` holds for the
/// answer; how long that took. The time it takes is what is measured, so this asks
/// as a device would rather than waiting on the instance's internals.
async fn until(app: &TestApp, device: &TestDevice, done: impl Fn(&PollResponse) -> bool) -> Duration {
    let started = Instant::now();
    let request = Poll {
        version: "6.3.0r20".into(),
        ..Poll::default()
    };
    loop {
        let answer = app.poll_as(device, &request).await;
        if answer.as_ref().is_ok_and(&done) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the other instance did not follow within 5 s: {answer:?}"
        );
    }
}

/// Two instances on one new PostgreSQL database, the second with the first's keys
/// and without the cluster jobs. Tests poll back to back to time a change: no
/// device budget to spend.
async fn two_instances() -> (TestApp, TestApp) {
    support::on_backend(Backend::Postgres);
    let pg = PgDatabase::create();
    let url = pg.url.clone();
    let first_dir = tempfile::tempdir().unwrap();
    let keys = first_dir.path().join("keys").to_string_lossy().into_owned();
    let unlimited = ("device_requests_per_minute", "1000000");
    let one = TestApp::start_on(Backend::Postgres, url.clone(), Some(pg), first_dir, &[unlimited]).await;
    let two = TestApp::start_on(
        Backend::Postgres,
        url,
        None,
        tempfile::tempdir().unwrap(),
        &[("keys_dir", &keys), ("jobs", "false"), unlimited],
    )
    .await;
    (one, two)
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn a_change_on_one_instance_reaches_polls_on_the_other_within_a_second() {
    let (one, two) = two_instances().await;

    let f = fixture(&one).await;
    let fix = publish_patch(&one, &f, "6.3.0r21", file_bytes(512)).await;
    let device = one.enrol_device(&f.acme.admin.token, "fw-1", "6.3.0r20").await;

    // Enrolled and published on one; known to the other within a second.
    let learnt = until(&two, &device, |answer| {
        answer.offer().is_some_and(|offer| offer.patch_id == fix.as_str())
    })
    .await;
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
    let yanked = until(&two, &device, |answer| answer.offer().is_none()).await;
    assert!(
        yanked < Duration::from_secs(1),
        "the yank reached the other instance after {yanked:?}"
    );

    // Decommissioned on one: the token stops working on the other.
    assert_eq!(
        one.delete(&format!("/api/v1/devices/{}", device.id), &f.acme.admin.token)
            .await
            .0,
        204
    );
    let started = Instant::now();
    let request = Poll {
        version: "6.3.0r20".into(),
        ..Poll::default()
    };
    loop {
        let answer = two.poll_as(&device, &request).await;
        if answer.as_ref().err() == Some(&401) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still {answer:?} after {:?}",
            started.elapsed()
        );
    }
}

/// Devices whose latest pull failed, by the failure.
async fn failed_pulls(app: &TestApp) -> Vec<(Option<String>, i64)> {
    app.db(|conn| {
        use diesel::dsl::count_star;
        use diesel::prelude::*;
        use patchwarden::db::schema::device_pulls;
        Ok(device_pulls::table
            .filter(device_pulls::failures.gt(0))
            .group_by(device_pulls::last_failure)
            .select((device_pulls::last_failure, count_star()))
            .load(conn)?)
    })
    .await
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
    let settings = [
        ("pull_lease", "9s"),
        ("pull_timeout", "5s"),
        // Both instances' connections and the simulated devices' share this
        // process's file descriptors.
        ("pull_per_host", "128"),
        ("pull_concurrency", "128"),
    ];
    let one = TestApp::start_on(Backend::Postgres, url.clone(), Some(pg), first_dir, &settings).await;
    let mut with_keys = settings.to_vec();
    with_keys.push(("keys_dir", &keys));
    let two = TestApp::start_on(Backend::Postgres, url, None, tempfile::tempdir().unwrap(), &with_keys).await;

    fixture(&one).await;
    let devices = Endpoint::start("127.0.0.1").await;
    let drafts: Vec<DeviceDraft> = (0..DEVICES)
        .map(|n| {
            // Each answer takes a while, so that pulls are in flight when an instance dies.
            let answer = Reply::Delayed(Duration::from_millis(50), Box::new(Reply::version("6.3.0r20", None)));
            devices.script(&format!("/d/{n}"), vec![answer]);
            serde_json::from_value(json!({
                "name": format!("fw-{n:04}"), "product": "screenos", "version": "6.3.0r20",
                "pull_url": devices.url(&format!("/d/{n}")), "pull_schedule": "*/2 * * * * *",
            }))
            .unwrap()
        })
        .collect();
    let (sealing, outbound) = (one.state.sealing.clone(), one.state.outbound.clone());
    one.db(move |conn| import(conn, &sealing, &outbound, "acme", drafts).map(drop))
        .await;

    // Each request with the two-second slot it serves, as the scheduler names it.
    let hits = |devices: &Endpoint| -> Vec<Vec<(Instant, i64, f64)>> {
        let mut by_device = vec![Vec::new(); DEVICES];
        for request in devices.all_requests() {
            let n: usize = request.path.trim_start_matches("/d/").parse().unwrap();
            let due: chrono::DateTime<chrono::Utc> = request.headers["x-patchwarden-due"].parse().unwrap();
            by_device[n].push((request.at, due.timestamp() / 2, request.wall));
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
        if started.elapsed() > Duration::from_secs(30) {
            panic!(
                "four pulls of every device not within 30 s; failed pulls: {:?}",
                failed_pulls(&one).await
            );
        }
        if done {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    // One instance dies with pulls claimed; the other takes its leases over.
    let holder = one.state.instance.clone();
    let killed_by = Instant::now();
    let held_at_kill = loop {
        let holder = holder.clone();
        let held: i64 = one
            .db(move |conn| {
                use diesel::prelude::*;
                use patchwarden::db::schema::device_pulls;
                Ok(device_pulls::table
                    .filter(device_pulls::lease_holder.like(format!("{holder}:%")))
                    .count()
                    .get_result(conn)?)
            })
            .await;
        if held > 0 {
            break held as usize;
        }
        assert!(
            killed_by.elapsed() < Duration::from_secs(30),
            "the first instance claimed nothing for 30 s; failed pulls: {:?}",
            failed_pulls(&one).await
        );
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    };
    drop(runner_one);
    let killed = Instant::now();
    loop {
        let done = hits(&devices)
            .iter()
            .all(|h| h.iter().filter(|(at, _, _)| *at > killed).count() >= 3);
        if wait_for(
            "three pulls of every device after the kill",
            Duration::from_secs(30),
            killed,
            done,
        ) {
            break;
        }
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    drop(runner_two);
    let failures = failed_pulls(&one).await;
    assert!(failures.is_empty(), "pulls failed: {failures:?}");

    let mut total = 0;
    let mut taken_over = 0;
    let mut repeated = 0;
    for (n, hits) in hits(&devices).into_iter().enumerate() {
        let mut hits = hits;
        hits.sort_by_key(|a| a.0);
        total += hits.len();
        for pair in hits.windows(2) {
            let ((first, slot, sent), (at, next, _)) = (pair[0], pair[1]);
            if next == slot {
                // Only a pull the dead instance had sent when it died is sent again,
                // by the instance that took its lease over.
                assert!(
                    first < killed && at > killed,
                    "device {n} was pulled twice for slot {slot}: {hits:?}"
                );
                repeated += 1;
                continue;
            }
            assert!(next > slot, "device {n}'s slots went backwards: {hits:?}");
            if at < killed {
                // The next slot, unless this pull ran so late that the next slot had
                // begun: then the schedule resumes after it (a missed slot is caught
                // up once, not replayed).
                let late = sent >= ((slot + 1) * 2) as f64;
                assert!(
                    next == slot + 1 || (late && next == slot + 2),
                    "device {n} missed a slot before the kill: {hits:?}"
                );
            } else {
                // A pull claimed by the dead instance waits for its lease (9 s) to run
                // out; the slot it held is then pulled once, late — within the lease
                // and the time the surviving instance takes to claim it — and the
                // slots that passed meanwhile are not replayed one by one: the next
                // pull is of the slot under way when the late one was sent, or the
                // one after.
                let late = sent - (slot * 2) as f64;
                assert!(
                    late <= 9.0 + 10.0,
                    "device {n} was left unpulled after the kill ({late:.1} s late): {hits:?}"
                );
                let under_way = (sent / 2.0).floor() as i64;
                assert!(
                    next <= under_way + 2,
                    "device {n} skipped slots after its late pull: {hits:?}"
                );
                taken_over += usize::from(next > slot + 1);
            }
        }
    }
    assert!(total >= DEVICES * 7, "{total} pulls");
    assert!(taken_over + repeated > 0, "the dead instance held no pull when it died");
    assert!(
        repeated <= held_at_kill,
        "{repeated} slots were pulled twice, more than the {held_at_kill} leases the dead instance held"
    );
    eprintln!(
        "{total} pulls; the dead instance held {held_at_kill} leases; {taken_over} devices waited for one, \
         {repeated} requests it had sent were sent again"
    );
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn a_pause_and_a_window_set_on_one_instance_reach_polls_on_the_other_within_a_second() {
    let (one, two) = two_instances().await;
    let f = fixture(&one).await;
    let offered = one.enrol_device(&f.acme.admin.token, "fw-offered", "6.3.0r20").await;
    let waiting = one.enrol_device(&f.acme.admin.token, "fw-waiting", "6.3.0r20").await;
    let body = json!({
        "product": "screenos", "version": "6.3.0r21", "platform": "ssg-500",
        "applies_to": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}],
        "fixes": [f.advisory], "filename": "screenos-6.3.0r21.bin"
    });
    let (status, created) = one.post("/api/v1/patches", &f.vendor.token, body).await;
    assert_eq!(status, 201, "{created}");
    let patch = created["id"].as_str().unwrap().to_owned();
    let (status, _) = support::patching::upload_file(&one, &f.vendor.token, &patch, file_bytes(512)).await;
    assert_eq!(status, 200);
    let wave = json!({"percent": 100, "success_threshold": 90, "error_threshold": 10,
                      "min_reports": 5, "install_timeout": "1h"});
    let (status, planned) = one
        .post(
            &format!("/api/v1/patches/{patch}/rollouts"),
            &f.vendor.token,
            json!({"waves": [wave]}),
        )
        .await;
    assert_eq!(status, 201, "{planned}");
    let id = planned["id"].as_str().unwrap().to_owned();
    let (status, body) = one
        .post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = one
        .post(&format!("/api/v1/rollouts/{id}/start"), &f.vendor.token, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    until(&two, &offered, |answer| {
        answer.offer().is_some_and(|offer| offer.patch_id == patch)
    })
    .await;

    // Paused on one: within a second the other says so to the device it offered
    // the patch (which keeps it), and offers it to no one anew, saying why.
    let (status, body) = one
        .post(
            &format!("/api/v1/rollouts/{id}/pause"),
            &f.vendor.token,
            json!({"reason": "looks bad"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let paused = until(&two, &offered, |answer| {
        answer
            .offer()
            .and_then(|offer| offer.rollout.as_ref())
            .is_some_and(|rollout| rollout.state.as_str() == "paused")
    })
    .await;
    assert!(
        paused < Duration::from_secs(1),
        "the pause reached the other instance after {paused:?}"
    );
    let request = Poll {
        version: "6.3.0r20".into(),
        ..Poll::default()
    };
    let answer = two.poll_as(&waiting, &request).await.unwrap();
    assert!(answer.offer().is_none(), "offered anew while paused: {answer:?}");
    // Why is said once a signed head covers the pause's log entry.
    let logged = until(&two, &waiting, |answer| {
        answer.offer().is_none() && answer.held.as_ref().is_some_and(|h| h.state.as_str() == "paused")
    })
    .await;
    assert!(logged < Duration::from_secs(3), "the pause was logged after {logged:?}");

    // A window set on one: the other defers the install within a second.
    let hour = (chrono::Utc::now() + chrono::TimeDelta::hours(2))
        .format("%H")
        .to_string();
    let (status, body) = one
        .put(
            "/api/v1/maintenance-windows",
            &f.acme.admin.token,
            json!([{"schedule": format!("0 0 {hour} * * *"), "duration": "1h", "time_zone": "UTC"}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let deferred = until(&two, &offered, |answer| {
        answer
            .offer()
            .is_some_and(|offer| offer.install == patchwarden::api::device::Install::Deferred)
    })
    .await;
    assert!(
        deferred < Duration::from_secs(1),
        "the window reached the other instance after {deferred:?}"
    );

    // A window open now that lets one device install at a time, for the cluster:
    // the place taken through one is taken for the other, until the install ends.
    let hour = chrono::Utc::now().format("%H").to_string();
    let (status, body) = one
        .put(
            "/api/v1/maintenance-windows",
            &f.acme.admin.token,
            json!([{"schedule": format!("0 0 {hour} * * *"), "duration": "2h", "time_zone": "UTC",
                    "max_concurrent": 1}]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = one
        .post(&format!("/api/v1/rollouts/{id}/resume"), &f.vendor.token, json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    use patchwarden::api::device::Install;
    until(&one, &offered, |answer| {
        answer.offer().is_some_and(|offer| offer.install == Install::Now)
    })
    .await;
    until(&two, &waiting, |answer| {
        answer.offer().is_some_and(|offer| offer.install == Install::Deferred)
    })
    .await;
    let answer = two.poll_as(&waiting, &request).await.unwrap();
    assert_eq!(
        answer.offer().map(|o| o.install),
        Some(Install::Deferred),
        "the one place is taken"
    );
    let (status, body) = one
        .post(
            "/api/v1/device/report",
            &offered.token,
            json!({"patch_id": patch, "state": "installed", "version": "6.3.0r21"}),
        )
        .await;
    assert!((200..300).contains(&status), "{status} {body}");
    let answer = two.poll_as(&waiting, &request).await.unwrap();
    assert_eq!(
        answer.offer().map(|o| o.install),
        Some(Install::Now),
        "the place was given up"
    );
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn a_publication_on_one_instance_reaches_the_others_csaf_files_within_a_second() {
    let (one, two) = two_instances().await;
    let f = fixture(&one).await;
    let index = |app: &TestApp| {
        let url = app.url("/.well-known/csaf/white/index.txt");
        let client = app.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    // The other instance renders its public files, and keeps them.
    let before = index(&two).await;
    assert_eq!(before.lines().count(), 1, "{before}");
    let published = support::patching::publish_advisory(
        &one,
        &f.vendor.token,
        json!({
            "title": "Denial of service in the ScreenOS web console", "summary": "A crafted request.",
            "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.2.0r1", "fixed": "6.2.0r9"}]}]
        }),
    )
    .await;
    let id = published["id"].as_str().unwrap().to_lowercase();
    let started = Instant::now();
    loop {
        let listed = index(&two).await;
        if listed.contains(&id) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the other instance's index.txt does not list {id}: {listed}"
        );
    }
    let learnt = started.elapsed();
    assert!(
        learnt < Duration::from_secs(1),
        "the publication reached the other instance after {learnt:?}"
    );
    let changes = one
        .client
        .get(two.url("/.well-known/csaf/white/changes.csv"))
        .send()
        .await
        .unwrap();
    let changes = changes.text().await.unwrap();
    assert!(
        changes.contains(&format!("/{id}.json\",\"")),
        "changes.csv does not follow: {changes}"
    );
}
