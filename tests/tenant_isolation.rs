//! Tenant isolation: a customer-admin of one customer gets 404 for every object of
//! another, on every route that names an object, and sees only its own in lists.
//! The walk below takes its routes from the server's own route table, so a route
//! added later is probed without editing this file; a route over a kind of object
//! the walk has no fixture for fails it until one is added.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::patching::{draft, file_bytes, fixture, upload_file};
use support::{csrf_field, error_code, sign_in, TestApp};

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

/// One probe's answer: status, and the error code of a JSON body (or the first
/// bytes of any other body).
async fn probe(app: &TestApp, method: &str, path: &str, token: &str, session: &str, csrf: &str) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let url = app.url(path);
    let request = if path.starts_with(patchwarden::routes::API_PREFIX) {
        let request = app.client.request(method.clone(), url).bearer_auth(token);
        if method == reqwest::Method::GET || method == reqwest::Method::HEAD || method == reqwest::Method::DELETE {
            request
        } else {
            request.header("content-type", "application/json").body("{}")
        }
    } else {
        let request = app.client.request(method.clone(), url).header("cookie", session);
        if method == reqwest::Method::POST {
            request.form(&[("csrf_token", csrf), ("reason", "probe"), ("change_summary", "probe")])
        } else {
            request
        }
    };
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, code)
}

/// The objects of the victim customer (and the vendor's unpublished ones) that the
/// attacker must not reach, by the resource a path parameter follows.
struct Victim {
    customer: String,
    user: String,
    token: String,
    patch: String,
    draft_advisory: String,
    key: String,
    device: String,
    enrollment_token: String,
    product: String,
    anomaly: String,
    webhook: String,
    delivery: String,
    rollout: String,
    /// A TLP:AMBER advisory for the victim alone: its CSAF document's year and file.
    amber_year: String,
    amber_file: String,
}

/// For the parameter that follows `resource` in a path: the victim's value and a
/// value of the same shape that names nothing. `None` for objects that are public
/// by design (signing keys, CSAF documents).
fn fill(victim: &Victim, resource: &str, param: &str, path: &str) -> Option<(String, String)> {
    let absent_id = "01900000-0000-7000-8000-000000000000".to_owned();
    let pair = match (resource, param) {
        ("customers", "slug") => (victim.customer.clone(), "no-such-customer".to_owned()),
        ("users" | "people", "id") => (victim.user.clone(), absent_id),
        ("tokens", "id") => (victim.token.clone(), absent_id),
        ("patches", "id") => (victim.patch.clone(), absent_id),
        ("advisories", "id" | "key") => (victim.draft_advisory.clone(), absent_id),
        ("revisions", "n") => ("1".to_owned(), "1".to_owned()),
        ("devices", "id") => (victim.device.clone(), absent_id),
        ("enrollment-tokens", "id") => (victim.enrollment_token.clone(), absent_id),
        ("products", "slug") => (victim.product.clone(), "no-such-product".to_owned()),
        ("anomalies", "id") => (victim.anomaly.clone(), absent_id),
        ("webhooks", "id") => (victim.webhook.clone(), absent_id),
        ("deliveries", "delivery") => (victim.delivery.clone(), absent_id),
        ("rollouts", "id") => (victim.rollout.clone(), absent_id),
        ("keys", "key_id") => return None,
        // A window is named by its place in the caller's own list: no path names
        // another customer's (the windows test shows the victim's stay as they were).
        ("windows", "n") => return None,
        // The log's tiles are public, as the log is.
        ("tile", "tail:.*") => return None,
        // A restricted CSAF document names the victim's advisory; the distribution's
        // lists answer each reader its own (the CSAF provider's tests show the
        // victim's documents are left out of another customer's).
        ("csaf", "tlp") if path.ends_with("{file}") => ("amber".to_owned(), "red".to_owned()),
        ("csaf", "tlp") => return None,
        ("csaf", "year") => (victim.amber_year.clone(), "1999".to_owned()),
        ("csaf", "file") => (victim.amber_file.clone(), "pw-1999-0001.json".to_owned()),
        ("white", "year") | (_, "file") => return None,
        _ => panic!(
            "{path}: the isolation walk does not know the objects behind `{{{param}}}` after `{resource}`; \
             give it a fixture of that kind"
        ),
    };
    Some(pair)
}

/// `path` with every parameter filled by the victim's objects, and the same path
/// naming nothing; `None` when it names a public object.
fn instantiate(victim: &Victim, path: &str) -> Option<(String, String)> {
    let (mut theirs, mut absent) = (String::new(), String::new());
    let mut previous = "";
    for segment in path.split('/').skip(1) {
        theirs.push('/');
        absent.push('/');
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(param) => {
                let (value, missing) = fill(victim, previous, param, path)?;
                theirs.push_str(&value);
                absent.push_str(&missing);
            }
            None => {
                theirs.push_str(segment);
                absent.push_str(segment);
                previous = segment;
            }
        }
    }
    Some((theirs, absent))
}

/// Publishes a TLP:AMBER advisory for acme alone; its CSAF document's year and file.
async fn patchwarden_amber(app: &TestApp, f: &support::patching::Fixture) -> (String, String) {
    let body = json!({
        "title": "Private key disclosure in acme's VPN cluster", "summary": "For acme.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "tlp": "AMBER", "customers": ["acme"],
        "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
    });
    support::patching::publish_advisory(app, &f.vendor.token, body).await;
    let response = app
        .client
        .get(app.url("/.well-known/csaf/amber/index.txt"))
        .bearer_auth(&f.acme.admin.token)
        .send()
        .await
        .unwrap();
    let index = response.text().await.unwrap();
    let (year, file) = index.trim().split_once('/').expect("acme's amber document");
    (year.to_owned(), file.to_owned())
}

#[actix_web::test]
async fn every_route_with_an_id_hides_another_customers_objects() {
    for app in TestApp::each().await {
        // acme is entitled to the product and owns the objects; globex probes.
        let f = fixture(&app).await;
        let (_, token) = app
            .post("/api/v1/tokens", &f.acme.admin.token, json!({"label": "acme-ci"}))
            .await;
        let bytes = file_bytes(2048);
        let patch = draft(&app, &f, None).await;
        assert_eq!(upload_file(&app, &f.vendor.token, &patch, bytes).await.0, 200);
        let (status, _) = app
            .post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201);
        let (_, draft_advisory) = app
            .post(
                "/api/v1/advisories",
                &f.vendor.token,
                json!({"title": "Embargoed finding"}),
            )
            .await;
        let (status, device) = app
            .post(
                "/api/v1/devices",
                &f.acme.admin.token,
                json!({"name": "fw-berlin-1", "product": "screenos", "version": "6.3.0r20", "labels": {"site": "berlin"}}),
            )
            .await;
        assert_eq!(status, 201, "{device}");
        let (status, enrollment) = app
            .post("/api/v1/enrollment-tokens", &f.acme.admin.token, json!({}))
            .await;
        assert_eq!(status, 201, "{enrollment}");
        // An anomaly: the device reports an image no release explains.
        let (status, _) = app
            .post(
                "/api/v1/device/poll",
                device["token"].as_str().unwrap(),
                json!({"version": "6.3.0r20", "image_sha256": "b".repeat(64)}),
            )
            .await;
        assert_eq!(status, 200);
        patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .unwrap();
        let (_, anomalies) = app.get("/api/v1/anomalies", &f.acme.admin.token).await;
        let (status, webhook) = app
            .post(
                "/api/v1/webhooks",
                &f.acme.admin.token,
                json!({"url": "https://hooks.acme.example/patchwarden", "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 201, "{webhook}");
        let webhook = webhook["id"].as_str().unwrap().to_owned();
        let (_, deliveries) = app
            .get(&format!("/api/v1/webhooks/{webhook}/deliveries"), &f.acme.admin.token)
            .await;
        let (status, _) = app
            .post(
                &format!("/api/v1/webhooks/{webhook}/ping"),
                &f.acme.admin.token,
                json!({}),
            )
            .await;
        assert_eq!(status, 202);
        let (_, with_ping) = app
            .get(&format!("/api/v1/webhooks/{webhook}/deliveries"), &f.acme.admin.token)
            .await;
        assert_eq!(
            deliveries["deliveries"],
            json!([]),
            "no anomaly event before the webhook existed"
        );
        let (status, rollout) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [{"percent": 100, "success_threshold": 90, "error_threshold": 5,
                                  "min_reports": 10, "install_timeout": "2h"}]}),
            )
            .await;
        assert_eq!(status, 201, "{rollout}");
        let amber = patchwarden_amber(&app, &f).await;
        let victim = Victim {
            amber_year: amber.0,
            amber_file: amber.1,
            product: "screenos".to_owned(),
            anomaly: anomalies["anomalies"][0]["id"].as_str().unwrap().to_owned(),
            webhook: webhook.clone(),
            delivery: with_ping["deliveries"][0]["id"].as_str().unwrap().to_owned(),
            rollout: rollout["id"].as_str().unwrap().to_owned(),
            device: device["id"].as_str().unwrap().to_owned(),
            enrollment_token: enrollment["id"].as_str().unwrap().to_owned(),
            customer: f.acme.slug.clone(),
            user: f.acme.admin.user_id.clone(),
            token: token["id"].as_str().unwrap().to_owned(),
            patch: patch.clone(),
            draft_advisory: draft_advisory["id"].as_str().unwrap().to_owned(),
            key: app.state.signer.key_id().to_owned(),
        };
        let session = sign_in(&app, &f.globex.admin).await;
        let account = app.page(&session, "/account").await.1;
        let csrf = csrf_field(&account);

        let routes = patchwarden::routes::table().list();
        let mut probed = 0;
        for route in routes.iter().filter(|r| r.path.contains('{')) {
            let Some((theirs, absent)) = instantiate(&victim, &route.path) else {
                continue;
            };
            let (method, path) = (route.method.as_str(), route.path.as_str());
            let seen = probe(&app, method, &theirs, &f.globex.admin.token, &session, &csrf).await;
            let baseline = probe(&app, method, &absent, &f.globex.admin.token, &session, &csrf).await;
            assert!(
                !(200..400).contains(&seen.0),
                "{method} {path}: another customer's object answered {seen:?}"
            );
            assert_eq!(
                seen, baseline,
                "{method} {path}: another customer's object and a missing one answer differently"
            );
            if path.starts_with("/api/v1/") && !path.starts_with("/api/v1/advisories/") && seen.0 != 403 {
                assert_eq!(seen.0, 404, "{method} {path}: {seen:?}");
            }
            probed += 1;
        }
        assert!(probed >= 30, "only {probed} routes were probed");

        // Nothing of acme changed, and public objects stayed public.
        let device_token = device["token"].as_str().unwrap();
        let (status, me) = app.get("/api/v1/me", device_token).await;
        assert_eq!((status, me["kind"].as_str()), (200, Some("device")), "{me}");
        let (_, listed) = app.get("/api/v1/devices", &f.globex.admin.token).await;
        assert_eq!(listed["total"], 0, "{listed}");
        let (_, listed) = app.get("/api/v1/enrollment-tokens", &f.globex.admin.token).await;
        assert_eq!(listed, json!([]));
        let (_, listed) = app.get("/api/v1/anomalies", &f.globex.admin.token).await;
        assert_eq!(listed["anomalies"], json!([]));
        let (_, listed) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        assert_eq!(
            listed["anomalies"].as_array().unwrap().len(),
            1,
            "the anomaly is still open"
        );
        let (_, listed) = app.get("/api/v1/webhooks", &f.acme.admin.token).await;
        assert_eq!(
            listed["webhooks"].as_array().unwrap().len(),
            1,
            "the webhook is still there"
        );
        assert_eq!(app.get("/api/v1/me", token["token"].as_str().unwrap()).await.0, 200);
        assert_eq!(app.get("/api/v1/me", &f.acme.admin.token).await.0, 200);
        let (_, patch_now) = app.get(&format!("/api/v1/patches/{patch}"), &f.acme.admin.token).await;
        assert_eq!(patch_now["state"], "published");
        let (_, advisory_now) = app
            .get(
                &format!("/api/v1/advisories/{}/draft", victim.draft_advisory),
                &f.vendor.token,
            )
            .await;
        assert_eq!(advisory_now["status"], "draft");
        assert_eq!(app.get_text(&format!("/api/v1/keys/{}", victim.key)).await.0, 200);
    }
}
