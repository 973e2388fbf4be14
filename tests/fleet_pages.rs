//! The fleet screens on every backend: a customer admin enrols a device (its token
//! shown once), creates and revokes an enrolment token, filters the device list,
//! reads the dashboard with its counts and chart and a device's timeline, and
//! decommissions; every form wants the session's CSRF token; hostile text is shown
//! escaped; the vendor sees each customer's fleet.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::patching::{file_bytes, fixture, publish_patch};
use support::{csrf_field, sign_in, TestApp};

#[actix_web::test]
async fn a_customer_admin_runs_its_fleet_through_the_screens() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(256)).await;
        let session = sign_in(&app, &f.acme.admin).await;
        let (status, html) = app.page(&session, "/fleet/devices").await;
        assert_eq!(status, 200);
        assert!(html.contains("No devices match"), "{html}");
        let csrf = csrf_field(&html);

        let device = |csrf: &str, name: &str, version: &str| {
            vec![
                ("csrf_token".to_owned(), csrf.to_owned()),
                ("name".to_owned(), name.to_owned()),
                ("product".to_owned(), "screenos".to_owned()),
                ("platform".to_owned(), "ssg-500".to_owned()),
                ("version".to_owned(), version.to_owned()),
                ("labels".to_owned(), "site=berlin\nrack=4".to_owned()),
            ]
        };
        let (status, _, _) = app
            .post_form(&session, "/fleet/devices", &device("forged", "fw-1", "6.3.0r20"))
            .await;
        assert_eq!(status, 403, "a forged CSRF token was accepted");
        let (status, _, html) = app
            .post_form(
                &session,
                "/fleet/devices",
                &device(&csrf, "<script>x</script>", "6.3.0r20"),
            )
            .await;
        assert_eq!(status, 201, "{html}");
        assert!(
            html.contains("&lt;script&gt;x&lt;&#x2F;script&gt;") && !html.contains("<script>x"),
            "{html}"
        );
        let token = html
            .split("<code id=\"device-token\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("pwd_"), "{token}");
        let (status, _, html) = app
            .post_form(&session, "/fleet/devices", &device(&csrf, "fw-old", "not a version"))
            .await;
        assert_eq!(status, 422);
        assert!(
            html.contains("not a vendor version") && html.contains("fw-old"),
            "the form keeps the input: {html}"
        );
        let (status, _, _) = app
            .post_form(&session, "/fleet/devices", &device(&csrf, "fw-ok", "6.2.0r10"))
            .await;
        assert_eq!(status, 201);

        // The device polls; the dashboard shows the advisory with its counts and chart.
        let (status, _) = app
            .post("/api/v1/device/poll", &token, json!({"version": "6.3.0r20"}))
            .await;
        assert_eq!(status, 200);
        patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .unwrap();
        let (status, html) = app.page(&session, "/fleet").await;
        assert_eq!(status, 200);
        assert!(html.contains(&f.advisory), "{html}");
        assert!(
            html.contains("<td class=\"affected\">") && html.contains(">1</a></td>"),
            "{html}"
        );
        assert!(html.contains("<svg class=\"chart adoption\""), "{html}");
        let (_, listed) = app
            .page(
                &session,
                &format!("/fleet/devices?advisory={}&state=affected&label=rack%3D4", f.advisory),
            )
            .await;
        assert!(
            listed.contains("1 device") && listed.contains("&lt;script&gt;"),
            "{listed}"
        );
        assert!(!listed.contains("fw-ok"), "{listed}");
        let (status, _) = app.page(&session, "/fleet/devices?state=sideways").await;
        assert_eq!(status, 422);

        // The device page shows its timeline; decommissioning keeps it.
        let (_, detail) = app.get("/api/v1/devices?label=rack%3D4", &f.acme.admin.token).await;
        let id = detail["devices"][0]["id"].as_str().unwrap().to_owned();
        let (status, html) = app.page(&session, &format!("/fleet/devices/{id}")).await;
        assert_eq!(status, 200);
        assert!(html.contains("id=\"timeline\"") && html.contains("6.3.0r20"), "{html}");
        assert!(html.contains("admin, then poll"), "{html}");
        let (status, location, _) = app
            .post_form(
                &session,
                &format!("/fleet/devices/{id}/decommission"),
                &[("csrf_token", csrf.as_str())],
            )
            .await;
        assert_eq!(
            (status, location.as_str()),
            (303, format!("/fleet/devices/{id}").as_str())
        );
        let (_, html) = app.page(&session, &format!("/fleet/devices/{id}")).await;
        assert!(html.contains("id=\"decommissioned\"") && !html.contains("id=\"decommission-form\""));

        // Enrolment tokens: created (shown once), listed, revoked.
        let (status, _, html) = app
            .post_form(
                &session,
                "/fleet/enrollment-tokens",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("label", "rack 4"),
                    ("max_uses", "10"),
                    ("expires_in", "2d"),
                ],
            )
            .await;
        assert_eq!(status, 201, "{html}");
        assert!(html.contains("id=\"enrollment-token\">pwe_"), "{html}");
        let (_, tokens) = app.get("/api/v1/enrollment-tokens", &f.acme.admin.token).await;
        let token_id = tokens[0]["id"].as_str().unwrap();
        let (status, _, _) = app
            .post_form(
                &session,
                &format!("/fleet/enrollment-tokens/{token_id}/revoke"),
                &[("csrf_token", csrf.as_str())],
            )
            .await;
        assert_eq!(status, 303);
        let (_, html) = app.page(&session, "/fleet/enrollment-tokens").await;
        assert!(
            html.contains("revoked") && !html.contains("id=\"enrollment-token\""),
            "{html}"
        );

        // The vendor sees the customer's fleet; another customer sees none of it.
        let vendor_session = sign_in(&app, &f.vendor).await;
        let (status, html) = app.page(&vendor_session, "/fleet/devices?customer=acme").await;
        assert_eq!(status, 200);
        assert!(html.contains("fw-ok") && !html.contains("id=\"enrol-form\""), "{html}");
        let (_, html) = app.page(&vendor_session, "/vendor/customers/acme").await;
        assert!(html.contains("/fleet?customer=acme"), "{html}");
        let globex = sign_in(&app, &f.globex.admin).await;
        let (_, html) = app.page(&globex, "/fleet/devices").await;
        assert!(html.contains("No devices match"), "{html}");
        let (status, _) = app.page(&globex, &format!("/fleet/devices/{id}")).await;
        assert_eq!(status, 404);
        let (status, _) = app.page(&vendor_session, "/fleet/enrollment-tokens").await;
        assert_eq!(status, 403, "enrolment tokens are a customer's");
    }
}
