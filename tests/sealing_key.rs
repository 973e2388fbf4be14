//! The key that seals pull tokens and webhook secrets at rest is held to the check
//! value the database stores: a server started without that key file, or with
//! another key, refuses to start instead of sealing new values no one else can open
//! and leaving the old ones unreadable. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use patchwarden::services::Services;
use serde_json::json;
use support::patching::fixture;
use support::TestApp;

/// The error `Services::open` gives with the app's configuration, as text.
async fn refusal(app: &TestApp) -> String {
    match Services::open(app.config.clone()).await {
        Ok(_) => panic!("[{}] the server started", app.backend.name()),
        Err(err) => format!("{err:#}"),
    }
}

#[actix_web::test]
async fn the_server_starts_only_with_the_sealing_key_its_values_were_sealed_with() {
    for app in TestApp::each_with(&[("webhooks_allow_http", "true")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                &f.acme.admin.token,
                json!({"url": "http://127.0.0.1:9/hook", "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        let path = app.config.secrets_key_file.clone();
        let original = std::fs::read(&path).unwrap();

        // Without the key file: refused, and no new key made in its place.
        std::fs::remove_file(&path).unwrap();
        let said = refusal(&app).await;
        assert!(said.contains("does not exist"), "[{backend}] {said}");
        assert!(
            !path.exists(),
            "[{backend}] a new key was made in place of the lost one"
        );

        // With another key: refused.
        std::fs::write(&path, format!("{}\n", "ab".repeat(32))).unwrap();
        let said = refusal(&app).await;
        assert!(said.contains("is not the one"), "[{backend}] {said}");

        // A database that holds sealed values but no check value (made before
        // there was one) gets no new key either.
        app.db(|conn| {
            use diesel::RunQueryDsl;
            diesel::delete(patchwarden::db::schema::sealing_key_check::table).execute(conn)?;
            Ok(())
        })
        .await;
        std::fs::remove_file(&path).unwrap();
        let said = refusal(&app).await;
        assert!(said.contains("holds sealed"), "[{backend}] {said}");
        assert!(
            !path.exists(),
            "[{backend}] a new key was made for sealed values it cannot open"
        );

        // The original key: it starts, and records the check value again.
        std::fs::write(&path, &original).unwrap();
        assert!(Services::open(app.config.clone()).await.is_ok(), "[{backend}]");
        let check = app.db(|conn| Ok(patchwarden::db::models::sealing::check(conn)?)).await;
        assert!(check.is_some(), "[{backend}] the check value is stored");
    }
}

#[actix_web::test]
async fn a_database_without_sealed_values_gets_a_new_key_when_there_is_none() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let path = app.config.secrets_key_file.clone();
        assert!(path.exists(), "[{backend}] the first start made a key");
        app.db(|conn| {
            use diesel::RunQueryDsl;
            diesel::delete(patchwarden::db::schema::sealing_key_check::table).execute(conn)?;
            Ok(())
        })
        .await;
        std::fs::remove_file(&path).unwrap();
        assert!(Services::open(app.config.clone()).await.is_ok(), "[{backend}]");
        assert!(
            path.exists(),
            "[{backend}] no key was made for a database with nothing sealed"
        );
    }
}
