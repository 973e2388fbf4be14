//! The vendor screens: draft through the form, preview, publish, revise and withdraw,
//! each form guarded by the session's CSRF token, each refusal shown on the page.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::Datelike;
use serde_json::json;
use support::{csrf_field, sign_in, TestApp};

#[actix_web::test]
async fn a_vendor_drafts_previews_publishes_revises_and_withdraws_through_the_screens() {
    for app in TestApp::each().await {
        let vendor = app.with_publisher().await;
        let product = json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
        let session = sign_in(&app, &vendor).await;

        let (status, html) = app.page(&session, "/vendor/advisories").await;
        assert_eq!(status, 200);
        assert!(html.contains("No advisories yet"), "{html}");
        let (_, form) = app.page(&session, "/vendor/advisories/new").await;
        let csrf = csrf_field(&form);

        let fields = |csrf: &str, affected: &str| -> Vec<(String, String)> {
            vec![
                ("csrf_token".into(), csrf.into()),
                ("title".into(), "Unauthorized code in ScreenOS".into()),
                ("summary".into(), "Administrative access and VPN decryption.".into()),
                ("cvss_v3".into(), "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H".into()),
                ("cves".into(), "CVE-2015-7755 CVE-2015-7756".into()),
                ("cwes".into(), "CWE-798".into()),
                ("emergency".into(), "on".into()),
                ("fix_deadline".into(), "2026-12-05".into()),
                ("affected".into(), affected.into()),
                ("references".into(), "https://kb.example.com/JSA10713".into()),
            ]
        };
        let as_refs = |v: &Vec<(String, String)>| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>();
        let good = "screenos: >=6.2.0r15 <6.2.0r19\nscreenos: >=6.3.0r12 <6.3.0r21";

        let forged = fields("forged", good);
        let response = app
            .client
            .post(app.url("/vendor/advisories"))
            .header("cookie", &session)
            .form(&as_refs(&forged))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "a forged CSRF token was accepted");

        let bad = fields(&csrf, "screenos 6.3.0r12");
        let response = app
            .client
            .post(app.url("/vendor/advisories"))
            .header("cookie", &session)
            .form(&as_refs(&bad))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let html = response.text().await.unwrap();
        assert!(html.contains("affected line 1"), "{html}");
        assert!(
            html.contains("Unauthorized code in ScreenOS"),
            "the form lost what was typed"
        );

        let good_fields = fields(&csrf, good);
        let response = app
            .client
            .post(app.url("/vendor/advisories"))
            .header("cookie", &session)
            .form(&as_refs(&good_fields))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let draft_url = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(draft_url.starts_with("/vendor/advisories/"));

        let (status, preview) = app.page(&session, &format!("{draft_url}/preview")).await;
        assert_eq!(status, 200);
        assert!(preview.contains("Preview — not published"));
        assert!(preview.contains("6.3.0r21"));
        let (status, _) = app.get_text("/advisories").await;
        assert_eq!(status, 200);
        let (_, list) = app.get_text("/api/v1/advisories").await;
        assert!(list.contains("\"total\":0"), "a draft was listed publicly: {list}");

        let (status, location, _) = app
            .post_form(
                &session,
                &format!("{draft_url}/publish"),
                &[("csrf_token", csrf.as_str()), ("change_summary", "")],
            )
            .await;
        assert_eq!(status, 303);
        let id = format!("PW-{}-0001", chrono::Utc::now().year());
        assert_eq!(location, format!("/advisories/{id}"));
        let (status, public) = app.get_text(&location).await;
        assert_eq!(status, 200);
        assert!(public.contains("EMERGENCY"));

        let mut revise = fields(&csrf, "screenos: >=6.2.0r15 <6.2.0r19\nscreenos: >=6.3.0r17 <6.3.0r21");
        let response = app
            .client
            .post(app.url(&format!("{draft_url}/revise")))
            .header("cookie", &session)
            .form(&as_refs(&revise))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            422,
            "a revision without a change summary was accepted"
        );
        revise.push(("change_summary".into(), "Narrowed the 6.3.0 range".into()));
        let response = app
            .client
            .post(app.url(&format!("{draft_url}/revise")))
            .header("cookie", &session)
            .form(&as_refs(&revise))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let (_, revisions) = app
            .get(&format!("/api/v1/advisories/{id}/revisions"), &vendor.token)
            .await;
        assert_eq!(revisions.as_array().unwrap().len(), 2);

        let (status, _, html) = app
            .post_form(
                &session,
                &format!("{draft_url}/withdraw"),
                &[("csrf_token", csrf.as_str()), ("reason", " ")],
            )
            .await;
        assert_eq!(status, 422);
        assert!(html.contains("reason is required"), "{html}");
        let (status, _, _) = app
            .post_form(
                &session,
                &format!("{draft_url}/withdraw"),
                &[("csrf_token", csrf.as_str()), ("reason", "Superseded")],
            )
            .await;
        assert_eq!(status, 303);
        let (_, screen) = app.page(&session, &draft_url).await;
        assert!(screen.contains("id=\"advisory-status\">withdrawn"), "{screen}");

        let acme = app.with_customer("acme").await;
        let customer_session = sign_in(&app, &acme.admin).await;
        let (status, _) = app.page(&customer_session, "/vendor/advisories").await;
        assert_eq!(status, 403);
    }
}

/// Posts the new-customer form: status, location and page.
async fn add_customer(app: &TestApp, session: &str, csrf: &str, slug: &str, name: &str) -> (u16, String, String) {
    let fields = [("csrf_token", csrf), ("slug", slug), ("name", name)];
    app.post_form(session, "/vendor/customers", &fields).await
}

/// Posts the new-administrator form of customer acme: the status.
async fn add_acme_admin(app: &TestApp, session: &str, csrf: &str, password: &str) -> u16 {
    let fields = [
        ("csrf_token", csrf),
        ("email", "it@acme.example"),
        ("password", password),
    ];
    app.post_form(session, "/vendor/customers/acme/admins", &fields).await.0
}

#[actix_web::test]
async fn a_vendor_admin_adds_a_customer_its_products_and_its_admin_on_the_screens() {
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let publisher = app.with_publisher().await;
        let product = serde_json::json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(app.post("/api/v1/products", &admin.token, product).await.0, 201);
        let session = sign_in(&app, &admin).await;
        let (status, list) = app.page(&session, "/vendor/customers").await;
        assert_eq!(status, 200);
        assert!(list.contains("id=\"empty-state\""), "{list}");
        let csrf = csrf_field(&list);

        // A bad slug goes back to the form with what was typed; hostile text is escaped.
        let (status, _, html) = add_customer(&app, &session, &csrf, "Bad Slug", "<b>Acme</b>").await;
        assert_eq!(status, 422);
        assert!(
            html.contains("&lt;b&gt;Acme&lt;&#x2F;b&gt;") && !html.contains("<b>Acme</b>"),
            "{html}"
        );
        let (status, location, _) = add_customer(&app, &session, &csrf, "acme", "Acme Networks").await;
        assert_eq!((status, location.as_str()), (303, "/vendor/customers/acme"));

        let (status, page) = app.page(&session, "/vendor/customers/acme").await;
        assert_eq!(status, 200);
        assert!(
            page.contains("Acme Networks") && page.contains("id=\"no-admins\""),
            "{page}"
        );
        let (status, _, _) = app
            .post_form(
                &session,
                "/vendor/customers/acme/entitlements",
                &[("csrf_token", csrf.as_str()), ("product:screenos", "on")],
            )
            .await;
        assert_eq!(status, 303);
        let (_, entitlements) = app.get("/api/v1/customers/acme/entitlements", &admin.token).await;
        assert_eq!(entitlements["products"], serde_json::json!(["screenos"]));

        let status = add_acme_admin(&app, &session, &csrf, "short").await;
        assert_eq!(status, 422, "a weak password goes back to the form");
        let status = add_acme_admin(&app, &session, &csrf, "a long enough passphrase").await;
        assert_eq!(status, 303);
        let (_, page) = app.page(&session, "/vendor/customers/acme").await;
        assert!(page.contains("it@acme.example"), "{page}");
        let new_admin = support::Actor {
            email: "it@acme.example".into(),
            password: "a long enough passphrase".into(),
            token: String::new(),
            user_id: String::new(),
        };
        let customer_session = sign_in(&app, &new_admin).await;

        // Publishers read; only a vendor-admin changes; a customer sees no vendor screen.
        let publisher_session = sign_in(&app, &publisher).await;
        let (status, page) = app.page(&publisher_session, "/vendor/customers/acme").await;
        assert_eq!(status, 200);
        assert!(!page.contains("admin-form"), "{page}");
        let publisher_csrf = csrf_field(&app.page(&publisher_session, "/account").await.1);
        let (status, _, _) = app
            .post_form(
                &publisher_session,
                "/vendor/customers",
                &[
                    ("csrf_token", publisher_csrf.as_str()),
                    ("slug", "globex"),
                    ("name", "Globex"),
                ],
            )
            .await;
        assert_eq!(status, 403);
        assert_eq!(app.page(&customer_session, "/vendor/customers").await.0, 403);
        let (_, customers) = app.get("/api/v1/customers", &admin.token).await;
        assert_eq!(
            customers.as_array().unwrap().len(),
            1,
            "the publisher's post created a customer"
        );
    }
}
