//! Operations endpoints: liveness, readiness, metrics and the security headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestApp;

#[actix_web::test]
async fn health_readiness_and_metrics() {
    for app in TestApp::each().await {
        let response = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let (status, ready) = support::status_and_json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
        assert_eq!(status, 200);
        let expected = match app.backend {
            support::Backend::Sqlite => "sqlite",
            support::Backend::Postgres => "postgres",
        };
        assert_eq!(ready["database"], expected);

        app.client.get(app.url("/api/v1/me")).send().await.unwrap();
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains(r#"patchwarden_http_requests_total{method="GET",route="/api/v1/me",status="401"} 1"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"patchwarden_http_request_duration_seconds_bucket{route="/readyz""#));
        assert!(metrics.contains("patchwarden_db_pool_connections "));
        assert!(metrics.contains("patchwarden_db_pool_idle_connections "));
    }
}
