//! Identity through the API: tokens, sessions, roles, rate limits and the error
//! contract, on every backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::{cookie_value, error_code, set_cookie, TestApp};

#[actix_web::test]
async fn token_authenticates_me_with_identity_and_role() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let (status, body) = app.get("/api/v1/me", &admin.token).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"kind": "user", "email": admin.email, "role": "vendor-admin"})
        );

        let acme = app.with_customer("acme").await;
        let (status, body) = app.get("/api/v1/me", &acme.admin.token).await;
        assert_eq!(status, 200);
        assert_eq!(body["role"], "customer-admin");
        assert_eq!(body["customer"], "acme");
    }
}

#[actix_web::test]
async fn missing_malformed_and_unknown_tokens_are_401() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let response = app.client.get(app.url("/api/v1/me")).send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");

        let forged = format!("{}0", &admin.token[..admin.token.len() - 1]);
        let forged = if forged == admin.token {
            format!("{}1", &admin.token[..admin.token.len() - 1])
        } else {
            forged
        };
        for token in [forged.as_str(), "pwt_nothex_nothex", "garbage"] {
            let (status, body) = app.get("/api/v1/me", token).await;
            assert_eq!(status, 401, "{token}: {body}");
            assert_eq!(error_code(&body), "unauthorized");
        }
        let response = app
            .client
            .get(app.url("/api/v1/me"))
            .header("authorization", format!("Basic {}", admin.token))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
}

#[actix_web::test]
async fn revoked_and_expired_tokens_are_401() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;

        let (status, created) = app
            .post(
                "/api/v1/tokens",
                &admin.token,
                json!({"label": "ci", "expires_in": "30d"}),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        let second = created["token"].as_str().unwrap().to_owned();
        assert!(created["expires_at"].is_string());
        assert_eq!(app.get("/api/v1/me", &second).await.0, 200);

        let (status, _) = app
            .delete(
                &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
                &admin.token,
            )
            .await;
        assert_eq!(status, 204);
        assert_eq!(app.get("/api/v1/me", &second).await.0, 401, "revoked token still works");
        let (status, body) = app
            .delete(
                &format!("/api/v1/tokens/{}", created["id"].as_str().unwrap()),
                &admin.token,
            )
            .await;
        assert_eq!((status, error_code(&body)), (409, "conflict"));

        // Expire a token by moving its expiry into the past, as time would.
        let (_, short) = app
            .post(
                "/api/v1/tokens",
                &admin.token,
                json!({"label": "short", "expires_in": "1h"}),
            )
            .await;
        let short_token = short["token"].as_str().unwrap().to_owned();
        assert_eq!(app.get("/api/v1/me", &short_token).await.0, 200);
        let id: patchwarden::ids::TokenId = short["id"].as_str().unwrap().parse().unwrap();
        app.db(move |conn| {
            use diesel::prelude::*;
            use patchwarden::db::schema::api_tokens;
            let past = patchwarden::db::models::now() - chrono::TimeDelta::seconds(1);
            diesel::update(api_tokens::table.find(&id))
                .set(api_tokens::expires_at.eq(past))
                .execute(conn)?;
            Ok(())
        })
        .await;
        let (status, body) = app.get("/api/v1/me", &short_token).await;
        assert_eq!(status, 401, "expired token still works: {body}");
    }
}

#[actix_web::test]
async fn tokens_are_stored_hashed_and_record_last_use() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let (_, created) = app
            .post("/api/v1/tokens", &admin.token, json!({"label": "audit"}))
            .await;
        let plaintext = created["token"].as_str().unwrap().to_owned();
        let secret = plaintext.rsplit('_').next().unwrap().to_owned();
        assert_eq!(secret.len(), 64, "256-bit secret");

        let stored = app
            .db(|conn| {
                use diesel::prelude::*;
                use patchwarden::db::schema::api_tokens;
                Ok(api_tokens::table.select(api_tokens::secret_hash).load::<String>(conn)?)
            })
            .await;
        assert!(stored.iter().all(|hash| !hash.contains(&secret)));
        assert!(stored.contains(&patchwarden::secrets::sha256_hex(secret.as_bytes())));

        let (_, listed) = app.get("/api/v1/tokens", &plaintext).await;
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == created["id"])
            .unwrap();
        assert!(row["last_used_at"].is_string(), "last use not recorded: {row}");
        assert!(!listed.to_string().contains(&secret), "a listing shows a secret");
    }
}

#[actix_web::test]
async fn wrong_passwords_hit_the_rate_limit_with_retry_after() {
    for app in TestApp::each_with(&[("login_attempts_per_minute", "3")]).await {
        let admin = app.with_vendor_admin().await;
        for _ in 0..3 {
            let response = app
                .client
                .post(app.url("/api/v1/session"))
                .json(&json!({"email": admin.email, "password": "wrong password!"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401);
        }
        let response = app
            .client
            .post(app.url("/api/v1/session"))
            .json(&json!({"email": admin.email, "password": admin.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429, "even the right password waits once limited");
        let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "retry-after {wait}");
        let (_, body) = support::status_and_json(response).await;
        assert_eq!(error_code(&body), "rate_limited");
    }
}

#[actix_web::test]
async fn session_login_sets_a_strict_cookie_and_writes_need_the_csrf_header() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let response = app
            .client
            .post(app.url("/api/v1/session"))
            .json(&json!({"email": "ADMIN@vendor.example", "password": admin.password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let cookie = set_cookie(response.headers(), "pw_session").unwrap().to_owned();
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.contains("SameSite=Strict"), "{cookie}");
        assert!(
            !cookie.contains("Secure"),
            "plain HTTP must not mark the cookie Secure: {cookie}"
        );
        let (_, body) = support::status_and_json(response).await;
        let csrf = body["csrf_token"].as_str().unwrap().to_owned();
        let session = format!("pw_session={}", cookie_value(&cookie));

        let me = app
            .client
            .get(app.url("/api/v1/me"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);

        let create = |csrf: Option<&str>| {
            let mut request = app
                .client
                .post(app.url("/api/v1/customers"))
                .header("cookie", &session)
                .json(&json!({"slug": "acme", "name": "Acme"}));
            if let Some(csrf) = csrf {
                request = request.header("x-csrf-token", csrf);
            }
            request.send()
        };
        let (status, body) = support::status_and_json(create(None).await.unwrap()).await;
        assert_eq!((status, error_code(&body)), (403, "csrf_failed"));
        let (status, _) = support::status_and_json(create(Some("forged")).await.unwrap()).await;
        assert_eq!(status, 403);
        let (status, _) = support::status_and_json(create(Some(&csrf)).await.unwrap()).await;
        assert_eq!(status, 201);

        let logout = app
            .client
            .delete(app.url("/api/v1/session"))
            .header("cookie", &session)
            .header("x-csrf-token", &csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 204);
        let me = app
            .client
            .get(app.url("/api/v1/me"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 401, "a logged-out session still works");
    }
}

#[actix_web::test]
async fn https_public_url_marks_the_session_cookie_secure() {
    for app in TestApp::each_with(&[("public_url", "https://updates.example.com")]).await {
        let admin = app.with_vendor_admin().await;
        let response = app
            .client
            .post(app.url("/api/v1/session"))
            .json(&json!({"email": admin.email, "password": admin.password}))
            .send()
            .await
            .unwrap();
        let cookie = set_cookie(response.headers(), "pw_session").unwrap();
        assert!(cookie.contains("Secure"), "{cookie}");
    }
}

#[actix_web::test]
async fn roles_are_enforced() {
    for app in TestApp::each().await {
        let publisher = app.with_publisher().await;
        let acme = app.with_customer("acme").await;
        for token in [&publisher.token, &acme.admin.token] {
            let (status, body) = app
                .post("/api/v1/customers", token, json!({"slug": "x", "name": "X"}))
                .await;
            assert_eq!((status, error_code(&body)), (403, "forbidden"));
        }
        let (status, _) = app.get("/api/v1/users", &publisher.token).await;
        assert_eq!(status, 403);
        let (status, _) = app
            .post(
                "/api/v1/users",
                &acme.admin.token,
                json!({"email": "boss@acme.example", "password": "long enough password", "role": "vendor-admin"}),
            )
            .await;
        assert_eq!(status, 403, "a customer-admin must not mint vendor staff");
        let (status, body) = app
            .post(
                "/api/v1/users",
                &acme.admin.token,
                json!({"email": "ops@acme.example", "password": "long enough password", "role": "customer-admin"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["customer"], "acme");
    }
}

#[actix_web::test]
async fn bad_input_is_a_4xx_that_names_the_problem_and_writes_nothing() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let send = |body: &'static str, content_type: &'static str| {
            app.client
                .post(app.url("/api/v1/customers"))
                .bearer_auth(&admin.token)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        let cases: [(&str, &str, u16, &str, &str); 7] = [
            (
                "{\"slug\": \"acme\",",
                "application/json",
                400,
                "bad_request",
                "malformed JSON",
            ),
            (
                "{\"slug\": \"acme\", \"name\": \"A\", \"admin\": true}",
                "application/json",
                422,
                "invalid",
                "unknown field `admin`",
            ),
            (
                "{\"slug\": 7, \"name\": \"A\"}",
                "application/json",
                422,
                "invalid",
                "invalid type",
            ),
            (
                "{\"slug\": \"Acme Corp\", \"name\": \"A\"}",
                "application/json",
                422,
                "invalid",
                "slug",
            ),
            (
                "{\"slug\": \"acme\", \"name\": \"\"}",
                "application/json",
                422,
                "invalid",
                "name must not be empty",
            ),
            (
                "{\"slug\": \"../etc\", \"name\": \"A\"}",
                "application/json",
                422,
                "invalid",
                "slug",
            ),
            (
                "slug=acme&name=A",
                "application/x-www-form-urlencoded",
                415,
                "unsupported_media_type",
                "JSON",
            ),
        ];
        for (body, content_type, status, code, message) in cases {
            let (got, json) = support::status_and_json(send(body, content_type).await.unwrap()).await;
            assert_eq!(got, status, "{body}: {json}");
            assert_eq!(error_code(&json), code, "{body}");
            let text = json["error"]["message"].as_str().unwrap();
            assert!(
                text.contains(message),
                "{body}: message `{text}` should mention `{message}`"
            );
        }

        let huge = format!("{{\"slug\": \"big\", \"name\": \"{}\"}}", "x".repeat(300 * 1024));
        let response = app
            .client
            .post(app.url("/api/v1/customers"))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body(huge)
            .send()
            .await
            .unwrap();
        let (status, json) = support::status_and_json(response).await;
        assert_eq!((status, error_code(&json)), (413, "payload_too_large"));

        let (status, customers) = app.get("/api/v1/customers", &admin.token).await;
        assert_eq!(status, 200);
        assert_eq!(customers, json!([]), "a refused request left a row behind");

        let (status, json) = app.get("/api/v1/no-such-thing", &admin.token).await;
        assert_eq!((status, error_code(&json)), (404, "not_found"));
        let (status, json) = app.get("/api/v1/users/not-an-id", &admin.token).await;
        assert_eq!((status, error_code(&json)), (404, "not_found"));
    }
}

#[actix_web::test]
async fn duplicates_are_conflicts() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let body = json!({"slug": "acme", "name": "Acme"});
        assert_eq!(app.post("/api/v1/customers", &admin.token, body.clone()).await.0, 201);
        let (status, json) = app.post("/api/v1/customers", &admin.token, body).await;
        assert_eq!((status, error_code(&json)), (409, "conflict"));
        let user =
            json!({"email": "Admin@Vendor.example", "password": "long enough password", "role": "vendor-publisher"});
        let (status, json) = app.post("/api/v1/users", &admin.token, user).await;
        assert_eq!(
            (status, error_code(&json)),
            (409, "conflict"),
            "e-mails compare case-insensitively"
        );
    }
}

#[actix_web::test]
async fn weak_passwords_and_bad_emails_are_refused() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let cases = [
            (
                json!({"email": "a@b.example", "password": "short", "role": "vendor-publisher"}),
                "password",
            ),
            (
                json!({"email": "not-an-email", "password": "long enough password", "role": "vendor-publisher"}),
                "email",
            ),
            (
                json!({"email": "a@b.example", "password": "long enough password", "role": "root"}),
                "role",
            ),
            (
                json!({"email": "a@b.example", "password": "long enough password", "role": "customer-admin"}),
                "customer",
            ),
            (
                json!({"email": "a@b.example", "password": "long enough password", "role": "customer-admin", "customer": "nobody"}),
                "customer",
            ),
        ];
        for (body, field) in cases {
            let (status, json) = app.post("/api/v1/users", &admin.token, body.clone()).await;
            assert_eq!(status, 422, "{body}: {json}");
            assert_eq!(json["error"]["field"], field, "{body}: {json}");
        }
        let (_, users) = app.get("/api/v1/users", &admin.token).await;
        assert_eq!(users.as_array().unwrap().len(), 1, "a refused user was written");
    }
}
