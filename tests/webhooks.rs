//! Anomaly flags and webhooks, on every backend: an image no signed release
//! explains is flagged (a registered one is not) and the event reaches the
//! customer's webhook signed as Standard Webhooks specifies, once more after three
//! 500s, with the same id; events queued before a restart are delivered after it;
//! acknowledgements keep who and when, and stay within the customer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use patchwarden::jobs::{run_once, start_jobs, Job};
use serde_json::{json, Value};
use support::endpoint::{Endpoint, Reply};
use support::patching::fixture;
use support::{error_code, verify_webhook as verify, TestApp};

const SETTINGS: [(&str, &str); 2] = [("webhook_retry_delay", "50ms"), ("webhooks_allow_http", "true")];

async fn register(app: &TestApp, token: &str, url: &str, events: Value) -> (String, String) {
    let (status, body) = app
        .post("/api/v1/webhooks", token, json!({"url": url, "events": events}))
        .await;
    assert_eq!(status, 201, "[{}] {body}", app.backend.name());
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().unwrap().to_owned(), secret)
}

#[actix_web::test]
async fn an_unknown_image_is_flagged_and_its_signed_event_survives_three_500s() {
    let good = "a".repeat(64);
    let evil = "e".repeat(64);
    for app in TestApp::each_with(&SETTINGS).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let receiver = Endpoint::start("127.0.0.1").await;
        receiver.script(
            "/hook",
            vec![
                Reply::status(500),
                Reply::status(500),
                Reply::status(500),
                Reply::Json(200, "{}".into()),
            ],
        );
        let (hook, secret) = register(&app, &f.acme.admin.token, &receiver.url("/hook"), json!(["anomaly"])).await;
        let (_, listed) = app.get("/api/v1/webhooks", &f.acme.admin.token).await;
        assert!(
            listed["webhooks"][0].get("secret").is_none(),
            "[{backend}] the secret is shown once"
        );

        // The vendor registers the release image; the device runs it: nothing to flag.
        let image = json!({"version": "6.3.0r20", "image_sha256": good, "platform": "ssg-500"});
        let (status, body) = app
            .post("/api/v1/products/screenos/images", &f.vendor.token, image.clone())
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        assert_eq!(
            app.post("/api/v1/products/screenos/images", &f.vendor.token, image)
                .await
                .0,
            200
        );
        let (status, _) = app
            .post(
                "/api/v1/products/screenos/images",
                &f.acme.admin.token,
                json!({"version": "1", "image_sha256": good}),
            )
            .await;
        assert_eq!(status, 403, "[{backend}] customers register no images");

        let devices = Endpoint::start("127.0.0.1").await;
        devices.script("/fw", vec![Reply::version("6.3.0r20", Some(&good))]);
        let (_, enrolled) = app
            .post(
                "/api/v1/devices",
                &f.acme.admin.token,
                json!({"name": "fw-1", "product": "screenos", "platform": "ssg-500", "version": "6.3.0r20",
                       "pull_url": devices.url("/fw")}),
            )
            .await;
        let id = enrolled["id"].as_str().unwrap().to_owned();
        let pull = format!("/api/v1/devices/{id}/pull");
        assert_eq!(
            app.post(&pull, &f.acme.admin.token, json!({})).await.1["image_sha256"],
            good
        );
        let (_, open) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        assert_eq!(
            open["anomalies"],
            json!([]),
            "[{backend}] a registered image is explained"
        );

        // The image changes to one no signed release explains.
        devices.script("/fw", vec![Reply::version("6.3.0r20", Some(&evil))]);
        app.post(&pull, &f.acme.admin.token, json!({})).await;
        let (_, open) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        let anomalies = open["anomalies"].as_array().unwrap();
        assert_eq!(anomalies.len(), 1, "[{backend}] {open}");
        assert_eq!(anomalies[0]["kind"], "unknown_image");
        assert_eq!(anomalies[0]["image_sha256"], evil);
        assert_eq!(anomalies[0]["device"]["name"], "fw-1");
        let anomaly = anomalies[0]["id"].as_str().unwrap().to_owned();
        // Seen again, it is not flagged twice.
        app.post(&pull, &f.acme.admin.token, json!({})).await;
        let (_, all) = app.get("/api/v1/anomalies", &f.acme.admin.token).await;
        assert_eq!(all["anomalies"].as_array().unwrap().len(), 1, "[{backend}]");
        let (_, theirs) = app.get("/api/v1/anomalies", &f.globex.admin.token).await;
        assert_eq!(theirs["anomalies"], json!([]), "[{backend}] another customer sees none");
        let (_, vendor) = app.get("/api/v1/anomalies?state=open", &f.vendor.token).await;
        assert_eq!(
            vendor["anomalies"].as_array().unwrap().len(),
            1,
            "[{backend}] the vendor sees all"
        );

        let jobs = start_jobs(app.state.clone().into_inner(), &[Job::DeliverWebhooks]);
        receiver
            .wait_hits("/hook", 4, Duration::from_secs(15), "four tries of the event")
            .await;
        // The run that sent the fourth try writes its outcome before the jobs stop.
        jobs.stop().await;
        let tries = receiver.requests("/hook");
        assert_eq!(
            tries.len(),
            4,
            "[{backend}] delivered once more after three 500s, then no more"
        );
        let ids: Vec<&String> = tries.iter().map(|r| &r.headers["webhook-id"]).collect();
        assert!(
            ids.iter().all(|i| *i == ids[0]),
            "[{backend}] the same id on every try: {ids:?}"
        );
        for request in &tries {
            assert_eq!(request.method, "POST");
            let event = verify(&secret, request);
            assert_eq!(event["type"], "anomaly", "[{backend}] {event}");
            assert_eq!(event["data"]["kind"], "unknown_image");
            assert_eq!(event["data"]["image_sha256"], evil);
            assert_eq!(event["data"]["device"]["id"], id.as_str());
        }
        assert!(tries.windows(2).all(|w| w[1].at > w[0].at));
        assert_eq!(
            run_once(&app.state, Job::DeliverWebhooks).await.unwrap(),
            0,
            "[{backend}] nothing left"
        );
        let (_, log) = app
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"), &f.acme.admin.token)
            .await;
        let delivery = &log["deliveries"][0];
        assert_eq!(delivery["state"], "delivered", "[{backend}] {log}");
        assert_eq!(delivery["attempts"], 4);
        assert_eq!(delivery["last_status"], 200);
        assert_eq!(delivery["event_id"], ids[0].as_str());
        let session = support::sign_in(&app, &f.acme.admin).await;
        let (status, page) = app.page(&session, "/fleet/webhooks").await;
        assert_eq!(status, 200);
        assert!(
            page.contains(ids[0].as_str()) && page.contains("Send again"),
            "[{backend}] the delivery log"
        );

        // Sent again on request: the same id.
        let delivery_id = delivery["id"].as_str().unwrap();
        let (status, _) = app
            .post(
                &format!("/api/v1/webhooks/{hook}/deliveries/{delivery_id}/retry"),
                &f.acme.admin.token,
                json!({}),
            )
            .await;
        assert_eq!(status, 202);
        run_once(&app.state, Job::DeliverWebhooks).await.unwrap();
        let again = receiver.requests("/hook");
        assert_eq!(again.len(), 5, "[{backend}]");
        assert_eq!(&again[4].headers["webhook-id"], ids[0]);
        verify(&secret, &again[4]);

        // Acknowledged by the customer's admin, with a comment; who and when are kept.
        let ack = format!("/api/v1/anomalies/{anomaly}/ack");
        let (status, _) = app.post(&ack, &f.globex.admin.token, json!({"comment": "ours?"})).await;
        assert_eq!(status, 404, "[{backend}] another customer's anomaly is not found");
        let (status, _) = app.post(&ack, &f.vendor.token, json!({"comment": "seen"})).await;
        assert_eq!(status, 403, "[{backend}]");
        let (status, body) = app.post(&ack, &f.acme.admin.token, json!({"comment": ""})).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("comment")),
            "[{backend}] {body}"
        );
        let (status, body) = app
            .post(
                &ack,
                &f.acme.admin.token,
                json!({"comment": "Reimaged from the signed r21 release"}),
            )
            .await;
        assert_eq!(status, 200, "[{backend}] {body}");
        assert_eq!(body["acknowledged"]["by"], f.acme.admin.user_id.as_str());
        assert_eq!(body["acknowledged"]["comment"], "Reimaged from the signed r21 release");
        assert!(body["acknowledged"]["at"].is_string());
        let (status, body) = app.post(&ack, &f.acme.admin.token, json!({"comment": "again"})).await;
        assert_eq!((status, error_code(&body)), (409, "conflict"), "[{backend}] {body}");
        let (_, open) = app.get("/api/v1/anomalies?state=open", &f.acme.admin.token).await;
        assert_eq!(open["anomalies"], json!([]), "[{backend}]");
        let (status, body) = app.get("/api/v1/anomalies?state=closed", &f.acme.admin.token).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("state")),
            "{body}"
        );
    }
}

#[actix_web::test]
async fn events_queued_before_a_restart_are_delivered_after_it() {
    for app in TestApp::each_with(&SETTINGS).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let receiver = Endpoint::start("127.0.0.1").await;
        receiver.script("/hook", vec![Reply::Json(204, String::new())]);
        let (hook, secret) = register(
            &app,
            &f.acme.admin.token,
            &receiver.url("/hook"),
            json!(["advisory.published", "emergency"]),
        )
        .await;
        let (status, _) = app
            .post(
                "/api/v1/devices",
                &f.acme.admin.token,
                json!({"name": "fw-1", "product": "screenos", "version": "6.3.0r20"}),
            )
            .await;
        assert_eq!(status, 201);
        // An emergency advisory that affects acme's device.
        let advisory = json!({
            "title": "VPN traffic decryption", "summary": "A second backdoor.", "emergency": true,
            "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r22"}]}]
        });
        let published = support::patching::publish_advisory(&app, &f.vendor.token, advisory).await;
        let (status, _) = app
            .post(&format!("/api/v1/webhooks/{hook}/ping"), &f.acme.admin.token, json!({}))
            .await;
        assert_eq!(status, 202);
        assert_eq!(receiver.hits("/hook"), 0, "nothing is sent without the delivery job");

        let app = app.restart().await;
        let _jobs = start_jobs(app.state.clone().into_inner(), &[Job::DeliverWebhooks]);
        receiver
            .wait_hits("/hook", 3, Duration::from_secs(10), "three events after the restart")
            .await;
        let mut kinds: Vec<String> = receiver
            .requests("/hook")
            .iter()
            .map(|r| verify(&secret, r)["type"].as_str().unwrap().to_owned())
            .collect();
        kinds.sort();
        assert_eq!(kinds, ["advisory.published", "emergency", "ping"], "[{backend}]");
        let published_event = receiver
            .requests("/hook")
            .iter()
            .map(|r| verify(&secret, r))
            .find(|e| e["type"] == "advisory.published")
            .unwrap();
        assert_eq!(
            published_event["data"]["advisory"]["id"], published["id"],
            "[{backend}]"
        );
        assert_eq!(published_event["data"]["exposure"]["affected"], 1);
    }
}

#[actix_web::test]
async fn webhook_urls_and_events_are_checked() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let admin = &f.acme.admin.token;
        let cases = [
            (
                json!({"url": "http://hooks.example.net/x", "events": ["anomaly"]}),
                "url",
                "https",
            ),
            (
                json!({"url": "https://169.254.169.254/x", "events": ["anomaly"]}),
                "url",
                "denied network",
            ),
            (
                json!({"url": "https://hooks.example.net/x", "events": []}),
                "events",
                "at least one",
            ),
            (
                json!({"url": "https://hooks.example.net/x", "events": ["anomaly", "everything"]}),
                "events",
                "`everything`",
            ),
        ];
        for (body, field, message) in cases {
            let (status, answer) = app.post("/api/v1/webhooks", admin, body).await;
            assert_eq!(
                (status, answer["error"]["field"].as_str()),
                (422, Some(field)),
                "[{backend}] {answer}"
            );
            assert!(
                answer["error"]["message"].as_str().unwrap().contains(message),
                "[{backend}] {answer}"
            );
        }
        let (status, body) = app
            .post(
                "/api/v1/webhooks",
                admin,
                json!({"url": "https://h.example.net/", "events": ["anomaly"], "extra": 1}),
            )
            .await;
        assert_eq!(status, 422, "[{backend}] unknown fields are refused: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`"));
        let (_, listed) = app.get("/api/v1/webhooks", admin).await;
        assert_eq!(listed["webhooks"], json!([]), "[{backend}] nothing refused was kept");
        let (status, _) = app
            .post(
                "/api/v1/webhooks",
                &f.vendor.token,
                json!({"url": "https://h.example.net/", "events": ["anomaly"]}),
            )
            .await;
        assert_eq!(status, 403, "[{backend}] webhooks are a customer's");
        let (hook, _) = register(&app, admin, "https://hooks.example.net/patchwarden", json!(["anomaly"])).await;
        assert_eq!(
            app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), &f.globex.admin.token)
                .await
                .0,
            404
        );
        assert_eq!(
            app.delete(&format!("/api/v1/webhooks/{hook}"), &f.globex.admin.token)
                .await
                .0,
            404
        );
        assert_eq!(app.delete(&format!("/api/v1/webhooks/{hook}"), admin).await.0, 204);
        assert_eq!(
            app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), admin).await.0,
            404
        );
    }
}

#[actix_web::test]
async fn backwards_versions_unreachable_devices_and_passed_deadlines_are_raised_once() {
    use diesel::prelude::*;
    use patchwarden::db::schema::device_pulls;
    for app in TestApp::each_with(&SETTINGS).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let admin = &f.acme.admin.token;
        let receiver = Endpoint::start("127.0.0.1").await;
        receiver.script("/hook", vec![Reply::Json(200, "{}".into())]);
        let (hook, secret) = register(
            &app,
            admin,
            &receiver.url("/hook"),
            json!(["anomaly", "device.unreachable", "deadline.overdue"]),
        )
        .await;
        let devices = Endpoint::start("127.0.0.1").await;
        let enrol = |name: &'static str, path: &'static str| {
            let url = devices.url(path);
            let app = &app;
            async move {
                let (status, body) = app
                    .post(
                        "/api/v1/devices",
                        admin,
                        json!({"name": name, "product": "screenos", "version": "6.3.0r20", "pull_url": url}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                body["id"].as_str().unwrap().to_owned()
            }
        };
        let pull = |id: String| {
            let app = &app;
            async move {
                app.post(&format!("/api/v1/devices/{id}/pull"), admin, json!({}))
                    .await
                    .1
            }
        };

        // Back from r21 to r20 with no rollback reported: flagged. After a reported
        // rollback: not.
        let sliding = enrol("sliding", "/sliding").await;
        devices.script("/sliding", vec![Reply::version("6.3.0r21", None)]);
        pull(sliding.clone()).await;
        devices.script("/sliding", vec![Reply::version("6.3.0r20", None)]);
        pull(sliding.clone()).await;
        let (_, open) = app.get("/api/v1/anomalies?state=open", admin).await;
        let mut kinds: Vec<&str> = open["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        kinds.sort();
        assert_eq!(kinds, ["unannounced_change", "version_backwards"], "[{backend}] {open}");
        let backwards = open["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["kind"] == "version_backwards")
            .unwrap();
        assert!(backwards["detail"]
            .as_str()
            .unwrap()
            .contains("from 6.3.0r21 back to 6.3.0r20"));

        // Unreachable for longer than `unreachable_after` (its outage began two hours
        // ago) while the emergency advisory affects its r20.
        let silent = enrol("silent", "/silent").await;
        devices.script("/silent", vec![Reply::status(503)]);
        assert!(pull(silent.clone()).await["failure"].is_object());
        let two_hours_ago = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(2);
        let id = silent.clone();
        app.db(move |conn| {
            diesel::update(device_pulls::table.filter(device_pulls::device_id.eq(id)))
                .set(device_pulls::unreachable_since.eq(two_hours_ago))
                .execute(conn)?;
            Ok(())
        })
        .await;
        // The fixture's emergency advisory gets a deadline that has passed.
        let (status, body) = app
            .post(
                &format!("/api/v1/advisories/{}/revisions", f.advisory),
                &f.vendor.token,
                json!({"change_summary": "Deadline set",
                    "title": "Unauthorized code in ScreenOS", "summary": "Backdoor.", "emergency": true,
                    "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "fix_deadline": "2026-01-01T00:00:00Z",
                    "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {body}");
        for _ in 0..2 {
            run_once(&app.state, Job::WatchFleet).await.unwrap();
        }
        let (_, open) = app.get("/api/v1/anomalies?state=open", admin).await;
        let unreachable: Vec<&Value> = open["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == "unreachable_in_emergency")
            .collect();
        assert_eq!(unreachable.len(), 1, "[{backend}] raised once: {open}");
        assert_eq!(unreachable[0]["device"]["name"], "silent");
        assert!(unreachable[0]["detail"].as_str().unwrap().contains(&f.advisory));

        run_once(&app.state, Job::DeliverWebhooks).await.unwrap();
        let mut events: Vec<String> = receiver
            .requests("/hook")
            .iter()
            .map(|r| {
                let event = verify(&secret, r);
                format!(
                    "{} {}",
                    event["type"].as_str().unwrap(),
                    event["data"]["kind"].as_str().unwrap_or("")
                )
            })
            .collect();
        events.sort();
        assert_eq!(
            events,
            [
                "anomaly unannounced_change",
                "anomaly unreachable_in_emergency",
                "anomaly version_backwards",
                "deadline.overdue ",
                "device.unreachable ",
            ],
            "[{backend}] each once"
        );
        let (_, log) = app.get(&format!("/api/v1/webhooks/{hook}/deliveries"), admin).await;
        assert_eq!(log["deliveries"].as_array().unwrap().len(), 5, "[{backend}]");

        // The dashboard lists the open flags; a device page acknowledges one.
        let session = support::sign_in(&app, &f.acme.admin).await;
        let (_, dashboard) = app.page(&session, "/fleet").await;
        assert!(dashboard.contains("kind-unreachable_in_emergency"), "[{backend}]");
        assert!(dashboard.contains("kind-version_backwards"));
        let (_, page) = app.page(&session, &format!("/fleet/devices/{sliding}")).await;
        assert!(page.contains("went from 6.3.0r21 back to 6.3.0r20"), "[{backend}]");
        let (status, location, _) = app
            .post_form(
                &session,
                &format!("/fleet/anomalies/{}/ack", backwards["id"].as_str().unwrap()),
                &[
                    ("csrf_token", support::csrf_field(&page).as_str()),
                    ("comment", "Rolled back by hand <b>after</b> a failed upgrade"),
                ],
            )
            .await;
        assert_eq!(
            (status, location.as_str()),
            (303, format!("/fleet/devices/{sliding}").as_str())
        );
        let (_, page) = app.page(&session, &format!("/fleet/devices/{sliding}")).await;
        assert!(
            page.contains("Rolled back by hand &lt;b&gt;after&lt;&#x2F;b&gt; a failed upgrade"),
            "[{backend}] escaped"
        );
        let (_, open) = app.get("/api/v1/anomalies?state=open", admin).await;
        assert_eq!(open["anomalies"].as_array().unwrap().len(), 2, "[{backend}] {open}");
    }
}
