//! Tenant isolation: a customer-admin of one customer gets 404 for every object of
//! another, on every route that names an object, and sees only its own in lists.
//! Each route of the API that takes an object id is listed here; a new one joins it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{error_code, TestApp};

#[actix_web::test]
async fn another_customers_objects_are_404_on_every_route() {
    for app in TestApp::each().await {
        let acme = app.with_customer("acme").await;
        let globex = app.with_customer("globex").await;
        let (_, token) = app
            .post("/api/v1/tokens", &globex.admin.token, json!({"label": "globex-ci"}))
            .await;
        let globex_token_id = token["id"].as_str().unwrap().to_owned();

        let reads = [
            format!("/api/v1/customers/{}", globex.slug),
            format!("/api/v1/users/{}", globex.admin.user_id),
            format!("/api/v1/tokens/{globex_token_id}"),
        ];
        for path in &reads {
            let (status, body) = app.get(path, &acme.admin.token).await;
            assert_eq!((status, error_code(&body)), (404, "not_found"), "GET {path}: {body}");
            let (own_status, _) = app.get(path, &globex.admin.token).await;
            assert_eq!(own_status, 200, "GET {path} by its owner");
        }

        let writes = [
            format!("/api/v1/tokens/{globex_token_id}"),
            format!("/api/v1/users/{}", globex.admin.user_id),
        ];
        for path in &writes {
            let (status, body) = app.delete(path, &acme.admin.token).await;
            assert_eq!((status, error_code(&body)), (404, "not_found"), "DELETE {path}: {body}");
        }
        // Nothing of globex changed.
        assert_eq!(app.get("/api/v1/me", token["token"].as_str().unwrap()).await.0, 200);
        assert_eq!(app.get("/api/v1/me", &globex.admin.token).await.0, 200);

        // A customer-admin cannot add users to another customer.
        let (status, body) = app
            .post(
                "/api/v1/users",
                &acme.admin.token,
                json!({"email": "mole@acme.example", "password": "long enough password", "role": "customer-admin", "customer": "globex"}),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        let (_, globex_users) = app.get("/api/v1/users", &globex.admin.token).await;
        assert_eq!(globex_users.as_array().unwrap().len(), 1);
    }
}

#[actix_web::test]
async fn lists_show_only_the_callers_customer() {
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        let acme = app.with_customer("acme").await;
        let globex = app.with_customer("globex").await;
        app.post("/api/v1/tokens", &globex.admin.token, json!({"label": "globex-ci"}))
            .await;

        let (_, customers) = app.get("/api/v1/customers", &acme.admin.token).await;
        let slugs: Vec<&str> = customers
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, ["acme"]);

        let (_, users) = app.get("/api/v1/users", &acme.admin.token).await;
        let emails: Vec<&str> = users
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap())
            .collect();
        assert_eq!(emails, [acme.admin.email.as_str()]);

        let (_, tokens) = app.get("/api/v1/tokens", &acme.admin.token).await;
        assert!(tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user"] == acme.admin.email.as_str()));

        // The vendor sees everyone.
        let (_, customers) = app.get("/api/v1/customers", &vendor.token).await;
        assert_eq!(customers.as_array().unwrap().len(), 2);
        let (_, users) = app.get("/api/v1/users", &vendor.token).await;
        assert_eq!(users.as_array().unwrap().len(), 3);
    }
}

#[actix_web::test]
async fn a_customer_admin_manages_its_own_colleagues() {
    for app in TestApp::each().await {
        let acme = app.with_customer("acme").await;
        let colleague = app.with_user("ops@acme.example", "customer-admin", Some("acme")).await;
        let (status, _) = app
            .get(&format!("/api/v1/users/{}", colleague.user_id), &acme.admin.token)
            .await;
        assert_eq!(status, 200);
        let (status, _) = app
            .delete(&format!("/api/v1/users/{}", colleague.user_id), &acme.admin.token)
            .await;
        assert_eq!(status, 204);
        assert_eq!(
            app.get("/api/v1/me", &colleague.token).await.0,
            401,
            "a deleted user's token still works"
        );
        let (status, body) = app
            .delete(&format!("/api/v1/users/{}", acme.admin.user_id), &acme.admin.token)
            .await;
        assert_eq!((status, error_code(&body)), (409, "conflict"));
    }
}
