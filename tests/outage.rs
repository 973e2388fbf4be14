//! The database goes away under a running server: once a connection cannot be had,
//! every route that needs the database answers 503 with `Retry-After` at once
//! instead of each request waiting out the pool; when the database is back, the
//! server serves again by itself. PostgreSQL only (an embedded SQLite file does not
//! go away), reached through a proxy the test cuts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::proxy::Proxy;
use support::{error_code, Backend, PgDatabase, TestApp, POSTGRES_ENV};

/// A server on a fresh PostgreSQL database that it reaches through a proxy the test
/// can cut.
async fn behind_proxy() -> (Proxy, TestApp) {
    let admin_url = std::env::var(POSTGRES_ENV).expect("PATCHWARDEN_TEST_POSTGRES_URL must name the PostgreSQL server");
    let upstream = url::Url::parse(&admin_url).unwrap();
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(
        upstream.host_str().unwrap().to_owned(),
        upstream.port().unwrap_or(5432),
    ))
    .unwrap()
    .next()
    .unwrap();
    let proxy = Proxy::start(upstream);
    let pg = PgDatabase::create();
    let mut through_proxy = url::Url::parse(&pg.url).unwrap();
    through_proxy.set_ip_host(proxy.address.ip()).unwrap();
    through_proxy.set_port(Some(proxy.address.port())).unwrap();
    support::on_backend(Backend::Postgres);
    let data_dir = tempfile::tempdir().unwrap();
    // Devices here poll back to back to load the outage: no device budget to spend.
    let settings = [("device_requests_per_minute", "1000000")];
    let app = TestApp::start_on(
        Backend::Postgres,
        through_proxy.to_string(),
        Some(pg),
        data_dir,
        &settings,
    )
    .await;
    (proxy, app)
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn a_lost_database_answers_503_at_once_and_recovers_by_itself() {
    let (proxy, app) = behind_proxy().await;
    let vendor = app.with_vendor_admin().await;
    assert_eq!(app.get("/api/v1/me", &vendor.token).await.0, 200);

    proxy.cut();
    // The first request finds out (it waits for the pool at most its timeout).
    let (status, body) = app.get("/api/v1/products", &vendor.token).await;
    assert_eq!((status, error_code(&body)), (503, "unavailable"), "{body}");
    // From now on the answer is immediate, and says when to come back.
    for path in ["/api/v1/me", "/api/v1/products", "/api/v1/advisories"] {
        let started = Instant::now();
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&vendor.token)
            .send()
            .await
            .unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 503, "{path}");
        let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=8).contains(&retry), "{path}: Retry-After {retry}");
        assert!(
            elapsed < Duration::from_millis(500),
            "{path} took {elapsed:?} while the database was known down"
        );
    }
    let (status, _) = app.get_text("/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(
        app.get_text("/healthz").await.0,
        200,
        "liveness does not depend on the database"
    );
    let (_, metrics) = app.get_text("/metrics").await;
    assert!(metrics.contains("db_known_down 1"), "{metrics}");

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if app.get_text("/readyz").await.0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover within 30 s of the database coming back"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/api/v1/me", &vendor.token).await.0, 200);
    assert!(app.get_text("/metrics").await.1.contains("db_known_down 0"));
    let (status, body) = app
        .post(
            "/api/v1/products",
            &vendor.token,
            serde_json::json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"}),
        )
        .await;
    assert_eq!(status, 201, "writes work again: {body}");
}

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn polls_answer_from_memory_while_the_database_is_away() {
    use support::patching::{file_bytes, fixture, publish_patch};
    let (proxy, app) = behind_proxy().await;
    let f = fixture(&app).await;
    let patch = publish_patch(&app, &f, "6.3.0r21", file_bytes(1024)).await;
    let mut devices = Vec::new();
    for n in 0..4 {
        let (status, body) = app
            .post(
                "/api/v1/devices",
                &f.acme.admin.token,
                serde_json::json!({"name": format!("fw-{n}"), "product": "screenos", "platform": "ssg-500", "version": "6.3.0r18"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        devices.push((
            body["id"].as_str().unwrap().to_owned(),
            body["token"].as_str().unwrap().to_owned(),
        ));
    }

    proxy.cut();
    let mut polls = 0;
    let outage = Instant::now();
    // Polls under load for as long as the database is away (at least two seconds,
    // so flushes and syncs fail underneath them).
    while outage.elapsed() < Duration::from_secs(2) || polls < 200 {
        let (_, token) = &devices[polls % devices.len()];
        let (status, body) = app
            .post("/api/v1/device/poll", token, serde_json::json!({"version": "6.3.0r19"}))
            .await;
        assert_eq!(status, 200, "poll {polls} during the outage: {body}");
        assert_eq!(body["update"]["patch_id"], patch.as_str(), "{body}");
        polls += 1;
    }
    // Other routes: once the database is known to be down, 503 at once.
    let (status, _) = app.get("/api/v1/devices", &f.acme.admin.token).await;
    assert_eq!(status, 503);
    let started = Instant::now();
    let (status, _) = app.get("/api/v1/devices", &f.acme.admin.token).await;
    assert_eq!(status, 503);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "other routes answer 503 at once"
    );
    assert!(
        app.state.fleet.queue.len() >= devices.len(),
        "the observations wait in memory"
    );

    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .is_ok()
            && app.state.fleet.queue.is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the queued observations were not written within 30 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    for (id, _) in &devices {
        let (status, detail) = app.get(&format!("/api/v1/devices/{id}"), &f.acme.admin.token).await;
        assert_eq!(status, 200);
        assert_eq!(detail["version"], "6.3.0r19", "seen during the outage: {detail}");
        let latest = &detail["observations"][0];
        assert_eq!(
            (latest["version"].as_str(), latest["source"].as_str()),
            (Some("6.3.0r19"), Some("poll"))
        );
        assert!(latest["times"].as_i64().unwrap() >= 50, "{latest}");
    }
    let (_, metrics) = app.get_text("/metrics").await;
    assert!(metrics.contains("fleet_observations_dropped_total 0"), "{metrics}");
}
