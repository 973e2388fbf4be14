//! One device against everyone else: a device that floods polls and install reports
//! with made-up image hashes is answered from memory past its budget, grows the
//! public log by nothing and the anomalies by one (which counts the repeats), and
//! another device's polls keep their latency; what pulls and webhooks may reach
//! by default; and how much one customer or user may keep. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use patchwarden::api::device::Poll;
use patchwarden::db::models::log as rows;
use patchwarden::jobs::{run_once, Job};
use serde_json::json;
use support::patching::{file_bytes, fixture, publish_patch};
use support::TestApp;

/// The 99th percentile of `samples`.
fn p99(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

#[actix_web::test]
async fn a_flooding_device_grows_the_log_by_a_handful_and_the_anomalies_by_one() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let fix = publish_patch(&app, &f, "6.3.0r21", file_bytes(512)).await;
        let flooder = app.enrol_device(&f.acme.admin.token, "fw-flood", "6.3.0r20").await;
        let bystander = app.enrol_device(&f.acme.admin.token, "fw-bystander", "6.3.0r20").await;
        let request = Poll {
            version: "6.3.0r20".into(),
            ..Poll::default()
        };
        let timed_polls = |count: usize| {
            let (app, bystander, request) = (&app, bystander.clone(), &request);
            async move {
                let mut took = Vec::with_capacity(count);
                for _ in 0..count {
                    let started = Instant::now();
                    let answer = app.poll_as(&bystander, request).await;
                    took.push(started.elapsed());
                    assert!(answer.is_ok(), "[{backend}] the bystander's poll: {answer:?}");
                }
                took
            }
        };
        let quiet = p99(timed_polls(40).await);
        run_once(&app.state, Job::FlushObservations).await.unwrap();
        let size_before = app.db(|conn| Ok(rows::size(conn)?)).await;

        // 10,000 polls and reports, each poll with an image hash never seen before,
        // from 16 connections at once.
        let started = Instant::now();
        let flood: Vec<_> = (0..16)
            .map(|lane| {
                let (client, url, token, fix) =
                    (app.client.clone(), app.base.clone(), flooder.token.clone(), fix.clone());
                actix_web::rt::spawn(async move {
                    let mut statuses = Vec::new();
                    for n in 0..625usize {
                        let report = n % 4 == 3;
                        let request = if report {
                            client
                                .post(format!("{url}/api/v1/device/report"))
                                .json(&json!({"patch_id": fix, "state": "downloading"}))
                        } else {
                            client.post(format!("{url}/api/v1/device/poll")).json(&json!({
                                "version": "6.3.0r20",
                                "image_sha256": format!("{:064x}", lane * 1_000_000 + n),
                            }))
                        };
                        let status = request.bearer_auth(&token).send().await.unwrap().status().as_u16();
                        statuses.push((report, status));
                    }
                    statuses
                })
            })
            .collect();
        let during = p99(timed_polls(40).await);
        let mut answers: Vec<(bool, u16)> = Vec::new();
        for lane in flood {
            answers.extend(lane.await.unwrap());
        }
        let statuses: Vec<u16> = answers.iter().map(|(_, status)| *status).collect();
        let flood_took = started.elapsed();
        assert_eq!(statuses.len(), 10_000);
        assert!(
            statuses.iter().all(|s| *s < 500),
            "[{backend}] the flood met a server error: {:?}",
            statuses.iter().filter(|s| **s >= 500).collect::<Vec<_>>()
        );
        let accepted = statuses.iter().filter(|s| **s < 300).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        assert!(accepted <= 200, "[{backend}] {accepted} of the flood were served");
        assert!(limited >= 9_700, "[{backend}] only {limited} of the flood were refused");

        run_once(&app.state, Job::FlushObservations).await.unwrap();
        let size_after = app.db(|conn| Ok(rows::size(conn)?)).await;
        assert!(
            size_after - size_before <= 3,
            "[{backend}] the flood grew the log by {} entries",
            size_after - size_before
        );
        let (status, listed) = app.get("/api/v1/anomalies", &f.acme.admin.token).await;
        assert_eq!(status, 200, "[{backend}] {listed}");
        let flagged: Vec<&serde_json::Value> = listed["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["device"]["id"] == flooder.id.as_str())
            .collect();
        assert_eq!(flagged.len(), 1, "[{backend}] {flagged:?}");
        assert_eq!(flagged[0]["kind"], "unknown_image", "[{backend}]");
        assert!(
            flagged[0]["occurrences"].as_u64().unwrap() > 1,
            "[{backend}] the repeats are counted: {}",
            flagged[0]
        );
        // Its install steps, all the same, fold into one history row that counts them.
        let flooder_id = flooder.id.clone();
        let reports: Vec<i32> = app
            .db(move |conn| {
                use diesel::prelude::*;
                use patchwarden::db::schema::install_reports;
                Ok(install_reports::table
                    .filter(install_reports::device_id.eq(flooder_id))
                    .select(install_reports::times)
                    .load(conn)?)
            })
            .await;
        let served_reports = answers
            .iter()
            .filter(|(report, status)| *report && *status < 300)
            .count();
        assert!(
            reports.len() <= 1,
            "[{backend}] {} report rows: {reports:?}",
            reports.len()
        );
        assert_eq!(
            reports.iter().sum::<i32>() as usize,
            served_reports.max(reports.len()),
            "[{backend}] every served report is counted"
        );
        eprintln!(
            "[{backend}] flood of 10,000 in {flood_took:?}: {accepted} served, {limited} refused; \
             log +{}; bystander poll p99 {quiet:?} quiet, {during:?} during",
            size_after - size_before
        );
        // Past its budget the flooder is answered from memory: another device's
        // polls stay within a small bound of their latency before.
        assert!(
            during <= quiet * 10 + Duration::from_millis(100),
            "[{backend}] the bystander's p99 went from {quiet:?} to {during:?} under a flood of 10,000 requests in {flood_took:?}"
        );
    }
}

#[actix_web::test]
async fn by_default_pulls_and_webhooks_reach_no_loopback_and_webhooks_no_private_network() {
    use patchwarden::domain::network::{DEFAULT_DENY, PRIVATE_NETWORKS};
    let defaults = [("outbound_deny", DEFAULT_DENY), ("webhook_deny", PRIVATE_NETWORKS)];
    for app in TestApp::each_with(&defaults).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let loopback = [
            "http://localhost:9/version",
            "http://127.1:9/version",
            "http://2130706433:9/version",
            "http://0x7f000001:9/version",
            "http://[::ffff:127.0.0.1]:9/version",
            "http://[::1]:9/version",
            "http://[::127.0.0.1]:9/version",
        ];
        for (n, url) in loopback.iter().enumerate() {
            let (status, body) = app
                .post(
                    "/api/v1/devices",
                    &f.acme.admin.token,
                    json!({"name": format!("fw-{n}"), "product": "screenos", "version": "6.3.0r20", "pull_url": url}),
                )
                .await;
            assert_eq!(
                (status, body["error"]["field"].as_str()),
                (422, Some("pull_url")),
                "[{backend}] a pull of {url}: {body}"
            );
        }
        // Devices live in private networks: those are pulled.
        let (status, body) = app
            .post(
                "/api/v1/devices",
                &f.acme.admin.token,
                json!({"name": "fw-lan", "product": "screenos", "version": "6.3.0r20",
                       "pull_url": "http://10.1.2.3:9/version"}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] a device in a private network: {body}");
        // A webhook reaches neither loopback nor a private network.
        for url in [
            "https://127.0.0.1/hook",
            "https://localhost/hook",
            "https://10.1.2.3/hook",
            "https://172.16.0.1/hook",
            "https://192.168.1.1/hook",
            "https://100.64.0.1/hook",
            "https://[fd12::1]/hook",
        ] {
            let (status, body) = app
                .post(
                    "/api/v1/webhooks",
                    &f.acme.admin.token,
                    json!({"url": url, "events": ["anomaly"]}),
                )
                .await;
            assert_eq!(
                (status, body["error"]["field"].as_str()),
                (422, Some("url")),
                "[{backend}] a webhook to {url}: {body}"
            );
        }
        // Each refused address is counted, pulls and webhooks apart.
        assert_eq!(
            app.refusals("denied_address", "pull").await,
            loopback.len() as u64,
            "[{backend}]"
        );
        assert_eq!(app.refusals("denied_address", "webhook").await, 7, "[{backend}]");
    }
}

#[actix_web::test]
async fn one_customers_tarpits_and_slow_devices_delay_no_other_customer() {
    use patchwarden::db::models::Customer;
    use patchwarden::domain::EventType;
    use patchwarden::jobs::start_jobs;
    use patchwarden::services::webhooks;
    use support::endpoint::{Endpoint, Reply};
    let settings = [
        ("pull_concurrency", "8"),
        ("pull_concurrency_per_customer", "4"),
        ("pull_timeout", "3s"),
        ("webhook_timeout", "5s"),
        ("webhooks_allow_http", "true"),
    ];
    for app in TestApp::each_with(&settings).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        support::patching::entitle_globex(&app, &f).await;
        let slow = Endpoint::start("127.0.0.1").await;
        let healthy = Endpoint::start("127.0.0.1").await;
        slow.script("/hook", vec![Reply::Hang]);
        slow.script(
            "/device",
            vec![Reply::Delayed(
                Duration::from_millis(2500),
                Box::new(Reply::version("6.3.0r20", None)),
            )],
        );
        healthy.script("/hook", vec![Reply::status(204)]);
        healthy.script("/device", vec![Reply::version("6.3.0r20", None)]);

        // Customer A (acme): 200 deliveries to a receiver that never answers, and
        // 200 devices due every second that answer just inside the timeout.
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                &f.acme.admin.token,
                json!({"url": slow.url("/hook"), "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        app.db(|conn| {
            let acme = Customer::find_by_slug(conn, "acme")?.expect("acme");
            for n in 0..200 {
                webhooks::emit(conn, &acme.id, EventType::Anomaly, json!({"n": n}), None)?;
            }
            Ok(())
        })
        .await;
        for n in 0..200 {
            let (status, body) = app
                .post(
                    "/api/v1/devices",
                    &f.acme.admin.token,
                    json!({"name": format!("slow-{n}"), "product": "screenos", "version": "6.3.0r20",
                           "pull_url": slow.url("/device"), "pull_schedule": "* * * * * *"}),
                )
                .await;
            assert_eq!(status, 201, "[{backend}] {body}");
        }
        // Customer B (globex): one webhook and one device due every second.
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                &f.globex.admin.token,
                json!({"url": healthy.url("/hook"), "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        let hook = body["id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(
                "/api/v1/devices",
                &f.globex.admin.token,
                json!({"name": "quick", "product": "screenos", "version": "6.3.0r20",
                       "pull_url": healthy.url("/device"), "pull_schedule": "* * * * * *"}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");

        let _jobs = start_jobs(
            app.state.clone().into_inner(),
            &[Job::PullDevices, Job::DeliverWebhooks],
        );
        // A's backlog is under way: its receiver and devices are being waited on.
        slow.wait_hits("/hook", 1, Duration::from_secs(5), "A's first delivery")
            .await;
        slow.wait_hits("/device", 4, Duration::from_secs(5), "A's first pulls")
            .await;
        let (status, body) = app
            .post(
                &format!("/api/v1/webhooks/{hook}/ping"),
                &f.globex.admin.token,
                json!({}),
            )
            .await;
        assert!(status < 300, "[{backend}] {body}");
        let pinged = Instant::now();
        healthy
            .wait_hits(
                "/hook",
                1,
                Duration::from_secs(2),
                "B's webhook behind A's 200 tarpit deliveries",
            )
            .await;
        let delivered = pinged.elapsed();

        // B's every-second device is pulled every second for the next six.
        let before = healthy.hits("/device");
        let watch = Instant::now();
        healthy
            .wait_hits(
                "/device",
                before + 6,
                Duration::from_millis(7_500),
                "B's device every second",
            )
            .await;
        let pulls: Vec<_> = healthy.requests("/device").iter().map(|r| r.at).collect();
        let gaps: Vec<Duration> = pulls.windows(2).map(|w| w[1] - w[0]).collect();
        let widest = gaps
            .iter()
            .skip(before.saturating_sub(1))
            .max()
            .copied()
            .unwrap_or_default();
        assert!(
            widest < Duration::from_millis(1_600),
            "[{backend}] B's device went {widest:?} without a pull (gaps {gaps:?}); webhook after {delivered:?}"
        );
        assert!(
            slow.hits("/device") >= 4 && watch.elapsed() < Duration::from_millis(7_500),
            "[{backend}] A's devices were pulled too, within their share"
        );
    }
}

#[actix_web::test]
async fn webhook_pings_are_limited_per_customer_and_counted() {
    use support::endpoint::{Endpoint, Reply};
    let settings = [("webhooks_allow_http", "true")];
    for app in TestApp::each_with(&settings).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let receiver = Endpoint::start("127.0.0.1").await;
        receiver.script("/hook", vec![Reply::status(204)]);
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                &f.acme.admin.token,
                json!({"url": receiver.url("/hook"), "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        let hook = body["id"].as_str().unwrap().to_owned();
        let ping = |token: String| {
            let (app, hook) = (&app, hook.clone());
            async move {
                app.post(&format!("/api/v1/webhooks/{hook}/ping"), &token, json!({}))
                    .await
                    .0
            }
        };
        let mut statuses = Vec::new();
        for _ in 0..31 {
            statuses.push(ping(f.acme.admin.token.clone()).await);
        }
        assert!(statuses[..30].iter().all(|s| *s < 300), "[{backend}] {statuses:?}");
        assert_eq!(statuses[30], 429, "[{backend}] the 31st ping in a minute");
        // Another customer's pings are its own.
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                &f.globex.admin.token,
                json!({"url": receiver.url("/hook"), "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        let other = body["id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(
                &format!("/api/v1/webhooks/{other}/ping"),
                &f.globex.admin.token,
                json!({}),
            )
            .await;
        assert!(status < 300, "[{backend}] {body}");

        assert_eq!(app.refusals("rate_limited", "webhook").await, 1, "[{backend}]");
    }
}

#[actix_web::test]
async fn what_one_customer_or_user_keeps_is_capped_and_each_refusal_counted() {
    use patchwarden::db::models::{now, Customer, NewUser, User};
    use patchwarden::ids::UserId;
    use patchwarden::services::refusals::Cap;
    for app in TestApp::each_with(&[("webhooks_allow_http", "true")]).await {
        let backend = app.backend.name();
        let acme = app.with_customer("acme").await;
        let globex = app.with_customer("globex").await;
        let admin = &acme.admin.token;
        let full =
            |body: &serde_json::Value, cap: Cap| body["error"]["message"].as_str() == Some(cap.message().as_str());

        // Enrolment tokens: the usable ones are capped; a revoked one makes room.
        let mut tokens = Vec::new();
        for n in 0..Cap::EnrollmentTokens.limit() {
            let (status, body) = app.post("/api/v1/enrollment-tokens", admin, json!({})).await;
            assert_eq!(status, 201, "[{backend}] enrolment token {n}: {body}");
            tokens.push(body["id"].as_str().unwrap().to_owned());
        }
        let (status, body) = app.post("/api/v1/enrollment-tokens", admin, json!({})).await;
        assert_eq!(status, 409, "[{backend}] {body}");
        assert!(full(&body, Cap::EnrollmentTokens), "[{backend}] {body}");
        let (status, _) = app
            .delete(&format!("/api/v1/enrollment-tokens/{}", tokens[0]), admin)
            .await;
        assert!(status < 300, "[{backend}] revoking: {status}");
        let (status, body) = app.post("/api/v1/enrollment-tokens", admin, json!({})).await;
        assert_eq!(status, 201, "[{backend}] after a revocation: {body}");
        let (status, body) = app
            .post("/api/v1/enrollment-tokens", &globex.admin.token, json!({}))
            .await;
        assert_eq!(status, 201, "[{backend}] another customer's are its own: {body}");

        // API tokens: the live ones of a user, counting the one it signs in with.
        for n in 1..Cap::ApiTokens.limit() {
            let (status, body) = app
                .post("/api/v1/tokens", admin, json!({"label": format!("t{n}")}))
                .await;
            assert_eq!(status, 201, "[{backend}] API token {n}: {body}");
        }
        let (status, body) = app.post("/api/v1/tokens", admin, json!({"label": "one more"})).await;
        assert_eq!(status, 409, "[{backend}] {body}");
        assert!(full(&body, Cap::ApiTokens), "[{backend}] {body}");

        // Webhooks of a customer.
        for n in 0..Cap::Webhooks.limit() {
            let (status, body) = app
                .post(
                    "/api/v1/webhooks",
                    admin,
                    json!({"url": format!("http://127.0.0.1:9/hook/{n}"), "events": ["anomaly"]}),
                )
                .await;
            assert_eq!(status, 201, "[{backend}] webhook {n}: {body}");
        }
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                admin,
                json!({"url": "http://127.0.0.1:9/hook/more", "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 409, "[{backend}] {body}");
        assert!(full(&body, Cap::Webhooks), "[{backend}] {body}");

        // Users of a customer: filled in the database (hashing a thousand passwords
        // is not what is tested), then one more is refused.
        let slug = acme.slug.clone();
        app.db(move |conn| {
            let customer = Customer::find_by_slug(conn, &slug)?.expect("acme");
            let held = User::count(conn, Some(&customer.id))?;
            let rows: Vec<(UserId, String)> = (held..Cap::Users.limit() as i64)
                .map(|n| (UserId::generate(), format!("colleague-{n}@acme.example")))
                .collect();
            let at = now();
            conn.write_transaction(|conn| {
                for (id, email) in &rows {
                    let new = NewUser {
                        id,
                        email,
                        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
                        role: "customer-admin",
                        customer_id: Some(&customer.id),
                        created_at: at,
                        password_change_required: false,
                    };
                    User::insert(conn, &new)?;
                }
                Ok::<_, diesel::result::Error>(())
            })?;
            Ok(())
        })
        .await;
        let (status, body) = app
            .post(
                "/api/v1/users",
                admin,
                json!({"email": "one-more@acme.example", "password": "a long enough passphrase", "role": "customer-admin"}),
            )
            .await;
        assert_eq!(status, 409, "[{backend}] {body}");
        assert!(full(&body, Cap::Users), "[{backend}] {body}");

        for cap in ["enrollment_tokens", "api_tokens", "webhooks", "users"] {
            assert_eq!(app.refusals("over_cap", cap).await, 1, "[{backend}] {cap}");
        }
    }
}
