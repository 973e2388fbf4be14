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

#[actix_web::test]
#[ignore = "needs PostgreSQL: set PATCHWARDEN_TEST_POSTGRES_URL and run with -- --include-ignored, as CI does"]
async fn a_lost_database_answers_503_at_once_and_recovers_by_itself() {
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
    let app = TestApp::start_on(Backend::Postgres, through_proxy.to_string(), Some(pg), data_dir, &[]).await;
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
