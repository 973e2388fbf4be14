//! The HTML side: login with its double-submit CSRF cookie, CSRF on every form,
//! role home pages, the account page, and escaping of hostile text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{cookie_value, csrf_field, set_cookie, sign_in, TestApp};

#[actix_web::test]
async fn login_form_needs_its_csrf_pair() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let page = app.client.get(app.url("/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let cookie = set_cookie(page.headers(), "pw_login_csrf").unwrap().to_owned();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
        let csrf = csrf_field(&page.text().await.unwrap());
        let form = |token: &str| {
            vec![
                ("email", admin.email.clone()),
                ("password", admin.password.clone()),
                ("csrf_token", token.to_owned()),
            ]
        };

        let missing_cookie = app
            .client
            .post(app.url("/login"))
            .form(&form(&csrf))
            .send()
            .await
            .unwrap();
        assert_eq!(missing_cookie.status(), 403);
        assert!(set_cookie(missing_cookie.headers(), "pw_session").is_none());

        let forged = app
            .client
            .post(app.url("/login"))
            .header("cookie", format!("pw_login_csrf={}", cookie_value(&cookie)))
            .form(&form("0123456789abcdef"))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403);

        let wrong_password = app
            .client
            .post(app.url("/login"))
            .header("cookie", format!("pw_login_csrf={}", cookie_value(&cookie)))
            .form(&[
                ("email", admin.email.as_str()),
                ("password", "not the password"),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_password.status(), 401);
        assert!(wrong_password
            .text()
            .await
            .unwrap()
            .contains("wrong e-mail or password"));

        let session = sign_in(&app, &admin).await;
        let home = app
            .client
            .get(app.url("/"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        let html = home.text().await.unwrap();
        assert!(html.contains("Vendor console"), "{html}");
        assert!(html.contains(&admin.email));
    }
}

#[actix_web::test]
async fn every_form_rejects_a_missing_or_forged_csrf_token() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let session = sign_in(&app, &admin).await;
        let account = app
            .client
            .get(app.url("/account"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        let csrf = csrf_field(&account.text().await.unwrap());

        for path in ["/account/tokens", "/logout"] {
            for fields in [vec![("label", "x")], vec![("label", "x"), ("csrf_token", "forged")]] {
                let response = app
                    .client
                    .post(app.url(path))
                    .header("cookie", &session)
                    .form(&fields)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 403, "{path} with {fields:?}");
            }
        }
        // Still signed in, and no token was created by the refused posts.
        let account = app
            .client
            .get(app.url("/account"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(account.status(), 200);
        let html = account.text().await.unwrap();
        assert_eq!(html.matches("/revoke\"").count(), 1, "only the fixture token exists");

        let created = app
            .client
            .post(app.url("/account/tokens"))
            .header("cookie", &session)
            .form(&[("label", "laptop"), ("expires_in", "7d"), ("csrf_token", &csrf)])
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let html = created.text().await.unwrap();
        assert!(html.contains("id=\"new-token-value\">pwt_"), "{html}");

        let logout = app
            .client
            .post(app.url("/logout"))
            .header("cookie", &session)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), 303);
        let after = app
            .client
            .get(app.url("/account"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 303, "the session survived logout");
        assert_eq!(after.headers()["location"], "/login");
    }
}

#[actix_web::test]
async fn home_pages_per_role_and_hostile_text_is_escaped() {
    for app in TestApp::each().await {
        let public = app.client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
        assert!(public.contains("No advisories have been published yet"));

        let publisher = app.with_publisher().await;
        let session = sign_in(&app, &publisher).await;
        let html = app.page(&session, "/").await.1;
        assert!(html.contains("Ask a vendor-admin to add customers"), "{html}");
        assert!(
            !html.contains("patchwarden customer add"),
            "admin-only steps shown to a publisher"
        );

        let hostile = "<script>alert('x')</script>\"&";
        let name = hostile.to_owned();
        app.db(move |conn| patchwarden::services::accounts::create_customer(conn, "evil", &name))
            .await;
        let evil_admin = app
            .with_user("admin@evil.example", "customer-admin", Some("evil"))
            .await;
        let session = sign_in(&app, &evil_admin).await;
        let html = app.page(&session, "/").await.1;
        assert!(!html.contains("<script>alert"), "unescaped: {html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt;&quot;&amp;"),
            "{html}"
        );
        assert!(html.contains("Working with patchwarden"));
    }
}

#[actix_web::test]
async fn pages_without_a_session_redirect_to_login_and_unknown_pages_are_404() {
    for app in TestApp::each().await {
        let response = app.client.get(app.url("/account")).send().await.unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/login");
        let response = app.client.get(app.url("/nowhere/<b>")).send().await.unwrap();
        assert_eq!(response.status(), 404);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
}
