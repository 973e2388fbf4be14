//! Patch pages: the vendor creates a patch through the form, uploads the file the way
//! the page's script does (session cookie and CSRF header), publishes and yanks it
//! through forms; the customer page and the advisory page show it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::patching::{fixture, Fixture};
use support::{csrf_field, sign_in, TestApp};

#[actix_web::test]
async fn a_patch_goes_through_the_vendor_screens_and_reaches_the_customer_page() {
    for app in TestApp::each().await {
        let Fixture {
            vendor,
            acme,
            globex,
            advisory: advisory_id,
        } = fixture(&app).await;

        let session = sign_in(&app, &vendor).await;
        let page = app.page(&session, "/vendor/patches").await.1;
        assert!(page.contains("No patches yet"), "{page}");
        let csrf = csrf_field(&page);
        let form = [
            ("csrf_token", csrf.as_str()),
            ("product", "screenos"),
            ("version", "6.3.0r21"),
            ("platform", "ssg-500"),
            ("filename", "screenos-6.3.0r21.bin"),
            ("fixes", advisory_id.as_str()),
            ("applies_to", ">=6.3.0r12 <6.3.0r21"),
        ];
        let bad: Vec<(&str, &str)> = form
            .iter()
            .map(|(k, v)| if *k == "filename" { (*k, "../x.bin") } else { (*k, *v) })
            .collect();
        let response = app
            .client
            .post(app.url("/vendor/patches"))
            .header("cookie", &session)
            .form(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        assert!(response.text().await.unwrap().contains("not a plain file name"));
        let response = app
            .client
            .post(app.url("/vendor/patches"))
            .header("cookie", &session)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let screen = response.headers()["location"].to_str().unwrap().to_owned();
        let id = screen.rsplit('/').next().unwrap().to_owned();

        let page = app.page(&session, &screen).await.1;
        assert!(page.contains(&format!("data-upload-url=\"/api/v1/patches/{id}/upload\"")));
        assert!(!page.contains("id=\"pending-upload\""));
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        let upload_url = app.url(&format!("/api/v1/patches/{id}/upload"));
        let begin = |csrf: Option<&str>| {
            let mut request = app
                .client
                .post(&upload_url)
                .header("cookie", &session)
                .json(&serde_json::json!({"size": bytes.len()}));
            if let Some(token) = csrf {
                request = request.header("x-csrf-token", token);
            }
            request.send()
        };
        let append = |csrf: Option<&str>, offset: usize, end: usize| {
            let mut request = app
                .client
                .patch(&upload_url)
                .header("cookie", &session)
                .header("content-type", "application/offset+octet-stream")
                .header("upload-offset", offset.to_string())
                .body(bytes[offset..end].to_vec());
            if let Some(token) = csrf {
                request = request.header("x-csrf-token", token);
            }
            request.send()
        };
        assert_eq!(
            begin(None).await.unwrap().status(),
            403,
            "an upload begun without the CSRF header"
        );
        assert_eq!(begin(Some(&csrf)).await.unwrap().status(), 201);
        assert_eq!(
            append(None, 0, 1000).await.unwrap().status(),
            403,
            "a slice sent without the CSRF header"
        );
        assert_eq!(append(Some(&csrf), 0, 120_000).await.unwrap().status(), 204);
        let page = app.page(&session, &screen).await.1;
        assert!(
            page.contains("An unfinished upload holds 120000 of 200000 bytes"),
            "the unfinished upload is not shown"
        );
        assert_eq!(append(Some(&csrf), 120_000, bytes.len()).await.unwrap().status(), 200);

        let response = app
            .client
            .post(app.url(&format!("{screen}/publish")))
            .header("cookie", &session)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let page = app.page(&session, &screen).await.1;
        assert!(page.contains("id=\"patch-state\">published"), "{page}");

        let sha = patchwarden::secrets::sha256_hex(&bytes);
        let customer_session = sign_in(&app, &acme.admin).await;
        let page = app.page(&customer_session, "/patches").await.1;
        assert!(page.contains(&sha), "the customer page lacks the hash");
        assert!(page.contains(&format!("/api/v1/patches/{id}/download")));
        let download = app
            .client
            .get(app.url(&format!("/api/v1/patches/{id}/download")))
            .header("cookie", &customer_session)
            .send()
            .await
            .unwrap();
        assert_eq!(
            download.status(),
            200,
            "the page's download link works with the web session"
        );
        let (_, public) = app.get_text(&format!("/advisories/{advisory_id}")).await;
        assert!(
            public.contains("screenos-6.3.0r21.bin") && public.contains(&sha),
            "the advisory page lacks the patch"
        );

        let response = app
            .client
            .post(app.url(&format!("{screen}/yank")))
            .header("cookie", &session)
            .form(&[("csrf_token", csrf.as_str()), ("reason", "Breaks HA pairs")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let page = app.page(&customer_session, "/patches").await.1;
        assert!(page.contains("YANKED") && page.contains("Breaks HA pairs"), "{page}");
        let globex_session = sign_in(&app, &globex.admin).await;
        let page = app.page(&globex_session, "/patches").await.1;
        assert!(!page.contains(&sha), "a customer without entitlement sees the patch");
        let status = app
            .client
            .get(app.url("/vendor/patches"))
            .header("cookie", &customer_session)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 403);
    }
}
