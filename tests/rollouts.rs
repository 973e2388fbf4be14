//! Rollouts on both databases: a patch offered wave by wave, held back from everyone
//! else with a claim the device can check against the log, paused by its own error
//! bound, advanced by the vendor, joined by devices enrolled mid-wave, finished; a
//! customer's hold and acceleration; the vendor's screens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::Duration;

use patchwarden::api::device::Held;
use patchwarden::client::agent::simulate::{self, FleetSpec};
use patchwarden::client::agent::verify::check_held;
use patchwarden::client::agent::Identity;
use patchwarden::domain::log::TreeHead;
use patchwarden::jobs::{run_once, Job};
use serde_json::{json, Value};

use support::devices::{screenos_agent, server_key, verified, TestDevice};
use support::patching::{enrollment_token, file_bytes, fixture, publish_advisory, upload_file, Fixture};
use support::{csrf_field, sign_in, until, TestApp};

/// A draft of the fix to 6.3.0r21 with its file uploaded, not yet published.
async fn fix_draft(app: &TestApp, f: &Fixture) -> String {
    let body = json!({
        "product": "screenos", "version": "6.3.0r21", "platform": "ssg-500",
        "applies_to": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}],
        "fixes": [f.advisory], "filename": "screenos-6.3.0r21.bin"
    });
    let (status, created) = app.post("/api/v1/patches", &f.vendor.token, body).await;
    assert_eq!(status, 201, "[{}] {created}", app.backend.name());
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(upload_file(app, &f.vendor.token, &id, file_bytes(4096)).await.0, 200);
    id
}

fn wave(percent: u32) -> Value {
    json!({"percent": percent, "success_threshold": 90, "error_threshold": 10,
           "min_reports": 5, "install_timeout": "1h"})
}

/// Polls as each device; the devices offered `patch`, and the answers.
async fn poll_all(app: &TestApp, devices: &[TestDevice], patch: &str) -> (HashSet<String>, Vec<Value>) {
    let mut offered = HashSet::new();
    let mut answers = Vec::new();
    for device in devices {
        let (status, answer) = app
            .post("/api/v1/device/poll", &device.token, json!({"version": "6.3.0r20"}))
            .await;
        assert_eq!(status, 200, "[{}] {answer}", app.backend.name());
        if answer["update"]["patch_id"] == patch {
            offered.insert(device.id.clone());
        }
        answers.push(answer);
    }
    (offered, answers)
}

/// Checks an answer's `held` claim as the agent does, against the answer's head
/// verified with the server's key `key`.
fn held_checks(answer: &Value, key: &str) -> Result<Held, String> {
    let held: Held = serde_json::from_value(answer["held"].clone()).map_err(|e| e.to_string())?;
    let head: TreeHead = verified(&answer["log_head"], key);
    check_held(&head, &held)?;
    Ok(held)
}

/// The log's `rollout.changed` entries of `rollout`, as their states, in order.
async fn logged_states(app: &TestApp, rollout: &str) -> Vec<String> {
    let mut states = Vec::new();
    for page in 0.. {
        let (start, end) = (page * 1000, page * 1000 + 1000);
        let (status, entries) = app
            .get(&format!("/api/v1/log/entries?start={start}&end={end}"), "")
            .await;
        assert_eq!(status, 200, "{entries}");
        let entries = entries["entries"].as_array().unwrap();
        states.extend(
            entries
                .iter()
                .filter_map(|e| serde_json::from_str::<Value>(e["leaf"].as_str()?).ok())
                .filter(|leaf| leaf["kind"] == "rollout.changed" && leaf["subject"] == format!("rollout/{rollout}"))
                .map(|leaf| leaf["state"].as_str().unwrap().to_owned()),
        );
        if entries.len() < 1000 {
            break;
        }
    }
    states
}

async fn report(app: &TestApp, device: &TestDevice, patch: &str, state: &str) {
    let mut body = json!({"patch_id": patch, "state": state});
    if state == "failed" {
        body["message"] = json!("the image did not boot");
    }
    let (status, answer) = app.post("/api/v1/device/report", &device.token, body).await;
    assert!(
        (200..300).contains(&status),
        "[{}] {status} {answer}",
        app.backend.name()
    );
}

async fn rollout(app: &TestApp, f: &Fixture, id: &str) -> Value {
    let (status, body) = app.get(&format!("/api/v1/rollouts/{id}"), &f.vendor.token).await;
    assert_eq!(status, 200, "[{}] {body}", app.backend.name());
    body
}

async fn command(app: &TestApp, f: &Fixture, id: &str, what: &str, body: Value) -> (u16, Value) {
    app.post(&format!("/api/v1/rollouts/{id}/{what}"), &f.vendor.token, body)
        .await
}

#[actix_web::test]
async fn a_rollout_offers_its_patch_wave_by_wave_and_pauses_itself_on_failures() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        let mut devices = Vec::new();
        for n in 0..40 {
            devices.push(
                app.enrol_device(&f.acme.admin.token, &format!("fw-{n}"), "6.3.0r20")
                    .await,
            );
        }
        let patch = fix_draft(&app, &f).await;
        let (status, planned) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [wave(25), wave(100)]}),
            )
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        assert_eq!(planned["state"], "draft");
        let id = planned["id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "[{name}] {body}");

        // In draft, the published patch is offered to no one; each device is told
        // why, in a claim the log backs.
        let (offered, answers) = poll_all(&app, &devices, &patch).await;
        assert!(offered.is_empty(), "[{name}] offered in draft: {offered:?}");
        let held = held_checks(&answers[0], &key).unwrap_or_else(|e| panic!("[{name}] {e}: {}", answers[0]));
        assert_eq!((held.rollout.as_str(), held.state.as_str()), (id.as_str(), "draft"));

        let (status, hook) = app
            .post(
                "/api/v1/webhooks",
                &f.acme.admin.token,
                json!({"url": "https://hooks.acme.example/patchwarden", "events": ["rollout.paused", "rollout.finished"]}),
            )
            .await;
        assert_eq!(status, 201, "[{name}] {hook}");
        let deliveries = format!("/api/v1/webhooks/{}/deliveries", hook["id"].as_str().unwrap());

        // Started: the first wave, a quarter of the 40, is offered it; no one else.
        let (status, started) = command(&app, &f, &id, "start", json!({"reason": "canaries first"})).await;
        assert_eq!(status, 200, "[{name}] {started}");
        assert_eq!(started["waves"][0]["counts"]["members"], 10, "[{name}] {started}");
        let (first_wave, answers) = poll_all(&app, &devices, &patch).await;
        assert_eq!(first_wave.len(), 10, "[{name}]");
        for (device, answer) in devices.iter().zip(&answers) {
            if !first_wave.contains(&device.id) {
                assert_eq!(answer["update"], Value::Null, "[{name}] {answer}");
                assert_eq!(held_checks(answer, &key).unwrap().state.as_str(), "running");
                // Nor can it fetch the file by naming the patch.
                let (status, _) = app
                    .get(&format!("/api/v1/patches/{patch}/download"), &device.token)
                    .await;
                assert_eq!(status, 404, "[{name}] a held-back device downloaded the patch");
            }
        }

        // A device enrolled now joins the open wave when the rollout next looks.
        let late = app.enrol_device(&f.acme.admin.token, "fw-late", "6.3.0r20").await;
        run_once(&app.state, Job::AdvanceRollouts).await.unwrap();
        let (offered, _) = poll_all(&app, std::slice::from_ref(&late), &patch).await;
        assert!(offered.contains(&late.id), "[{name}] the late device was not taken in");

        // Six of the first ten fail: the wave's error bound is crossed and the
        // rollout pauses itself, as a logged event.
        let wave_devices: Vec<&TestDevice> = devices.iter().filter(|d| first_wave.contains(&d.id)).collect();
        for device in &wave_devices[..6] {
            report(&app, device, &patch, "failed").await;
        }
        run_once(&app.state, Job::AdvanceRollouts).await.unwrap();
        let paused = rollout(&app, &f, &id).await;
        assert_eq!(paused["state"], "paused", "[{name}] {paused}");
        assert!(
            paused["reason"].as_str().unwrap().contains("6 of 6"),
            "[{name}] {paused}"
        );
        let last = paused["history"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            (last["action"].as_str(), last["actor"].as_str()),
            (Some("paused"), Some("server"))
        );
        assert_eq!(
            logged_states(&app, &id).await,
            ["draft", "running", "paused"],
            "[{name}]"
        );
        let (_, queued) = app.get(&deliveries, &f.acme.admin.token).await;
        let kinds: Vec<&str> = queued["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["rollout.paused"], "[{name}] the customer is told of the pause");

        // Paused: no one is offered it anew; the wave's devices that were offered it
        // keep it, so an install under way is not cut off.
        let (offered, answers) = poll_all(&app, &devices, &patch).await;
        assert_eq!(offered, first_wave, "[{name}]");
        let outside = devices.iter().position(|d| !first_wave.contains(&d.id)).unwrap();
        assert_eq!(held_checks(&answers[outside], &key).unwrap().state.as_str(), "paused");

        // The vendor moves on to the second wave: everyone is in it now; the rest
        // install and the rollout finishes.
        let (status, advanced) = command(&app, &f, &id, "advance", json!({"reason": "fixed by a config change"})).await;
        assert_eq!(status, 200, "[{name}] {advanced}");
        assert_eq!(
            (advanced["state"].as_str(), advanced["current_wave"].as_i64()),
            (Some("running"), Some(1))
        );
        let (offered, _) = poll_all(&app, &devices, &patch).await;
        assert_eq!(offered.len(), 40, "[{name}]");
        for device in devices.iter().filter(|d| !first_wave.contains(&d.id)) {
            report(&app, device, &patch, "installed").await;
        }
        run_once(&app.state, Job::AdvanceRollouts).await.unwrap();
        let finished = rollout(&app, &f, &id).await;
        assert_eq!(finished["state"], "finished", "[{name}] {finished}");
        assert_eq!(finished["waves"][1]["counts"]["installed"], 30, "[{name}] {finished}");
        let actions: Vec<&str> = finished["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["created", "started", "paused", "advanced", "finished"],
            "[{name}]"
        );
        let (_, queued) = app.get(&deliveries, &f.acme.admin.token).await;
        let finishes = queued["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["event_type"] == "rollout.finished")
            .count();
        assert_eq!(finishes, 1, "[{name}] {queued}");
        // Finished: the patch is offered as if there had been no rollout.
        let newcomer = app.enrol_device(&f.acme.admin.token, "fw-new", "6.3.0r20").await;
        let (offered, answers) = poll_all(&app, std::slice::from_ref(&newcomer), &patch).await;
        assert_eq!(offered.len(), 1, "[{name}] {answers:?}");
        assert_eq!(answers[0]["held"], Value::Null);
    }
}

#[actix_web::test]
async fn a_claim_the_log_does_not_back_is_refused() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        let device = app.enrol_device(&f.acme.admin.token, "fw-1", "6.3.0r20").await;
        let patch = fix_draft(&app, &f).await;
        let (status, planned) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [wave(100)]}),
            )
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        app.post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        let (_, answers) = poll_all(&app, std::slice::from_ref(&device), &patch).await;
        let genuine = held_checks(&answers[0], &key).unwrap_or_else(|e| panic!("[{name}] {e}"));
        assert_eq!(genuine.state.as_str(), "draft");
        // The same entry claimed as another state, another rollout, or with a proof
        // that does not reach the head: each refused.
        let mut lies = Vec::new();
        let mut other_state = answers[0].clone();
        other_state["held"]["state"] = json!("paused");
        lies.push(other_state);
        let mut other_rollout = answers[0].clone();
        other_rollout["held"]["rollout"] = json!("01900000-0000-7000-8000-000000000000");
        lies.push(other_rollout);
        let mut bad_proof = answers[0].clone();
        bad_proof["held"]["log"]["index"] = json!(0);
        lies.push(bad_proof);
        for lie in &lies {
            assert!(held_checks(lie, &key).is_err(), "[{name}] accepted {}", lie["held"]);
        }
    }
}

#[actix_web::test]
async fn rollout_requests_are_checked_and_refused_naming_the_problem() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let patch = fix_draft(&app, &f).await;
        let path = format!("/api/v1/patches/{patch}/rollouts");
        for (body, status, field) in [
            (json!({"waves": []}), 422, "waves"),
            (
                json!({"waves": [{"percent": 0, "success_threshold": 90, "error_threshold": 5,
                               "min_reports": 5, "install_timeout": "1h"}]}),
                422,
                "waves[0].percent",
            ),
            (
                json!({"waves": [wave(10), {"percent": 50, "success_threshold": 90, "error_threshold": 150,
                               "min_reports": 5, "install_timeout": "1h"}]}),
                422,
                "waves[1].error_threshold",
            ),
            (
                json!({"waves": [{"customers": ["nobody"], "success_threshold": 90, "error_threshold": 5,
                               "min_reports": 5, "install_timeout": "1h"}]}),
                422,
                "waves[0].customers",
            ),
            (
                json!({"waves": [{"devices": ["not-an-id"], "success_threshold": 90, "error_threshold": 5,
                               "min_reports": 5, "install_timeout": "1h"}]}),
                422,
                "waves[0].devices",
            ),
        ] {
            let (got, answer) = app.post(&path, &f.vendor.token, body.clone()).await;
            assert_eq!(got, status, "[{name}] {body}: {answer}");
            assert_eq!(answer["error"]["field"], field, "[{name}] {answer}");
        }
        let (got, answer) = app
            .post(&path, &f.vendor.token, json!({"waves": [wave(10)], "speed": "fast"}))
            .await;
        assert!((400..500).contains(&got), "[{name}] an unknown field: {got} {answer}");
        let (got, _) = app.post(&path, &f.acme.admin.token, json!({"waves": [wave(10)]})).await;
        assert_eq!(got, 403, "[{name}] a customer admin planned a rollout");

        let (status, planned) = app.post(&path, &f.vendor.token, json!({"waves": [wave(10)]})).await;
        assert_eq!(status, 201, "[{name}] {planned}");
        let id = planned["id"].as_str().unwrap();
        let (got, answer) = app.post(&path, &f.vendor.token, json!({"waves": [wave(10)]})).await;
        assert_eq!(got, 409, "[{name}] a second rollout in force: {answer}");
        // The patch is not published: the rollout cannot start, and nothing moved.
        let (got, answer) = command(&app, &f, id, "start", json!({})).await;
        assert_eq!(got, 409, "[{name}] {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("published"),
            "{answer}"
        );
        let (got, answer) = command(&app, &f, id, "pause", json!({})).await;
        assert_eq!(got, 409, "[{name}] paused a draft: {answer}");
        let (got, answer) = command(&app, &f, id, "start", json!({"reason": 7})).await;
        assert!((400..500).contains(&got), "[{name}] {answer}");
        assert_eq!(rollout(&app, &f, id).await["history"].as_array().unwrap().len(), 1);
        // Cancelled, another may be planned.
        let (got, answer) = command(&app, &f, id, "cancel", json!({"reason": "replanned"})).await;
        assert_eq!(got, 200, "[{name}] {answer}");
        let (status, _) = app.post(&path, &f.vendor.token, json!({"waves": [wave(50)]})).await;
        assert_eq!(status, 201, "[{name}]");
    }
}

#[actix_web::test]
async fn a_customer_holds_its_devices_back_or_takes_them_all_in() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        support::patching::entitle_globex(&app, &f).await;
        let mut acme = Vec::new();
        let mut globex = Vec::new();
        for n in 0..10 {
            acme.push(
                app.enrol_device(&f.acme.admin.token, &format!("acme-{n}"), "6.3.0r20")
                    .await,
            );
            globex.push(
                app.enrol_device(&f.globex.admin.token, &format!("globex-{n}"), "6.3.0r20")
                    .await,
            );
        }
        let patch = fix_draft(&app, &f).await;
        app.post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        let mut canaries = wave(100);
        canaries["customers"] = json!(["acme"]);
        let (status, planned) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [canaries, wave(100)]}),
            )
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        let id = planned["id"].as_str().unwrap().to_owned();
        let customer_path = format!("/api/v1/rollouts/{id}/customer");
        assert_eq!(command(&app, &f, &id, "start", json!({})).await.0, 200);
        // Two of acme's canaries take the offer before acme holds back.
        let (offered, _) = poll_all(&app, &acme[..2], &patch).await;
        assert_eq!(offered.len(), 2, "[{name}]");
        // Offers are written by the flush, as they are within a second.
        run_once(&app.state, Job::FlushObservations).await.unwrap();

        let (status, held) = app
            .put(&customer_path, &f.acme.admin.token, json!({"hold": true}))
            .await;
        assert_eq!(status, 200, "[{name}] {held}");
        assert_eq!(
            (held["hold"].as_bool(), held["accelerate"].as_bool()),
            (Some(true), Some(false))
        );
        assert_eq!(
            held["waves"][0]["counts"]["members"], 10,
            "[{name}] its own devices: {held}"
        );
        assert_eq!(held["waves"][0]["counts"]["offered"], 2, "[{name}] {held}");
        let (offered, _) = poll_all(&app, &acme, &patch).await;
        let keep: HashSet<String> = acme[..2].iter().map(|d| d.id.clone()).collect();
        assert_eq!(offered, keep, "[{name}] held back, but those offered keep it");
        // Held devices neither count for nor against the wave.
        let vendor_view = rollout(&app, &f, &id).await;
        let counts = &vendor_view["waves"][0]["counts"];
        assert_eq!(
            (counts["members"].as_u64(), counts["held"].as_u64()),
            (Some(0), Some(10)),
            "[{name}] {counts}"
        );

        // globex is in no open wave; it takes all its devices in at once.
        let (offered, _) = poll_all(&app, &globex, &patch).await;
        assert!(offered.is_empty(), "[{name}] {offered:?}");
        let (status, fast) = app
            .put(
                &customer_path,
                &f.globex.admin.token,
                json!({"hold": false, "accelerate": true}),
            )
            .await;
        assert_eq!(status, 200, "[{name}] {fast}");
        let (offered, _) = poll_all(&app, &globex, &patch).await;
        assert_eq!(offered.len(), 10, "[{name}]");

        // acme lets go: its canaries are offered the patch again.
        assert_eq!(
            app.put(&customer_path, &f.acme.admin.token, json!({"hold": false}))
                .await
                .0,
            200
        );
        let (offered, _) = poll_all(&app, &acme, &patch).await;
        assert_eq!(offered.len(), 10, "[{name}]");
        let actions: Vec<String> = rollout(&app, &f, &id).await["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            actions,
            [
                "created",
                "started",
                "held_by_customer",
                "accelerated_by_customer",
                "released_by_customer"
            ],
            "[{name}]"
        );

        // Both at once is refused; the vendor is not a customer here; a customer
        // that cannot see the patch cannot see the rollout.
        let (status, both) = app
            .put(
                &customer_path,
                &f.acme.admin.token,
                json!({"hold": true, "accelerate": true}),
            )
            .await;
        assert_eq!(
            (status, both["error"]["field"].as_str()),
            (422, Some("accelerate")),
            "[{name}] {both}"
        );
        assert_eq!(app.get(&customer_path, &f.vendor.token).await.0, 403, "[{name}]");
        let (status, body) = app
            .put(
                "/api/v1/customers/globex/entitlements",
                &f.vendor.token,
                json!({"products": []}),
            )
            .await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(app.get(&customer_path, &f.globex.admin.token).await.0, 404, "[{name}]");
    }
}

#[actix_web::test]
async fn the_vendor_plans_starts_and_pauses_a_rollout_on_its_screens() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        for n in 0..8 {
            app.enrol_device(&f.acme.admin.token, &format!("fw-{n}"), "6.3.0r20")
                .await;
        }
        let patch = fix_draft(&app, &f).await;
        app.post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        let session = sign_in(&app, &f.vendor).await;
        let patch_page = app.page(&session, &format!("/vendor/patches/{patch}")).await.1;
        assert!(
            patch_page.contains(&format!("/vendor/patches/{patch}/rollouts")),
            "[{name}]"
        );
        let list = format!("/vendor/patches/{patch}/rollouts");
        let (status, page) = app.page(&session, &list).await;
        assert_eq!(status, 200, "[{name}] {page}");
        assert!(page.contains("id=\"empty-state\""), "[{name}]");
        let csrf = csrf_field(&page);
        let plan = |shares: &'static str| {
            vec![
                ("csrf_token", csrf.clone()),
                ("shares", shares.to_owned()),
                ("success_threshold", "90".to_owned()),
                ("error_threshold", "10".to_owned()),
                ("min_reports", "5".to_owned()),
                ("install_timeout", "2h".to_owned()),
            ]
        };
        // A share that is no percentage: the form comes back with the problem named.
        let (status, _, body) = app.post_form(&session, &list, &plan("50, lots")).await;
        assert_eq!(status, 422, "[{name}] {body}");
        assert!(body.contains("`lots` is not a percentage"), "[{name}]");
        // Without the CSRF token: refused, nothing planned.
        let (status, _, _) = app.post_form(&session, &list, &plan("50, 100")[1..]).await;
        assert_eq!(status, 403, "[{name}]");
        let (status, screen, body) = app.post_form(&session, &list, &plan("50, 100")).await;
        assert_eq!(status, 303, "[{name}] {body}");
        let id = screen.rsplit('/').next().unwrap().to_owned();
        let (_, listed) = app
            .get(&format!("/api/v1/patches/{patch}/rollouts"), &f.vendor.token)
            .await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "[{name}] {listed}");

        let page = app.page(&session, &screen).await.1;
        assert!(page.contains("id=\"rollout-state\">draft"), "[{name}]");
        assert!(
            page.contains("id=\"start-form\"") && !page.contains("id=\"pause-form\""),
            "[{name}]"
        );
        // Each command needs its box ticked.
        let start = format!("/vendor/rollouts/{id}/start");
        let unconfirmed = [("csrf_token", csrf.as_str()), ("reason", "canaries")];
        let (status, _, body) = app.post_form(&session, &start, &unconfirmed).await;
        assert_eq!(status, 422, "[{name}]");
        assert!(body.contains("tick the box to confirm"), "[{name}]");
        let confirmed = [("csrf_token", csrf.as_str()), ("reason", "canaries"), ("confirm", "on")];
        assert_eq!(app.post_form(&session, &start, &confirmed).await.0, 303, "[{name}]");
        let page = app.page(&session, &screen).await.1;
        assert!(page.contains("id=\"rollout-state\">running"), "[{name}]");
        assert!(page.contains("id=\"wave-0\""), "[{name}]");
        // A hostile reason is shown as text.
        let hostile = "<script>alert(1)</script>";
        let pause = [("csrf_token", csrf.as_str()), ("reason", hostile), ("confirm", "on")];
        let pause_path = format!("/vendor/rollouts/{id}/pause");
        assert_eq!(app.post_form(&session, &pause_path, &pause).await.0, 303, "[{name}]");
        let page = app.page(&session, &screen).await.1;
        assert!(page.contains("id=\"rollout-state\">paused"), "[{name}]");
        assert!(!page.contains(hostile), "[{name}] the reason is not escaped");
        assert!(page.contains("&lt;script&gt;"), "[{name}]");
        // A customer admin has no rollout screen.
        let customer = sign_in(&app, &f.acme.admin).await;
        let (status, _) = app.page(&customer, &screen).await;
        assert_eq!(status, 403, "[{name}]");
    }
}

#[actix_web::test]
async fn a_device_offered_the_patch_keeps_it_through_a_pause_on_any_instance() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let offered = app.enrol_device(&f.acme.admin.token, "fw-offered", "6.3.0r20").await;
        let waiting = app.enrol_device(&f.acme.admin.token, "fw-waiting", "6.3.0r20").await;
        let patch = fix_draft(&app, &f).await;
        let (status, planned) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [wave(100)]}),
            )
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        let id = planned["id"].as_str().unwrap().to_owned();
        app.post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(command(&app, &f, &id, "start", json!({})).await.0, 200);
        let (got, _) = poll_all(&app, std::slice::from_ref(&offered), &patch).await;
        assert_eq!(got.len(), 1, "[{name}]");
        run_once(&app.state, Job::FlushObservations).await.unwrap();
        assert_eq!(
            command(&app, &f, &id, "pause", json!({"reason": "looks bad"})).await.0,
            200
        );
        // Another instance — here the same one started again, with nothing in memory
        // of the offer — still lets the device finish what it was offered; the
        // device never offered it waits.
        let app = app.restart().await;
        let (got, answers) = poll_all(&app, &[offered.clone(), waiting.clone()], &patch).await;
        let expected: HashSet<String> = [offered.id.clone()].into();
        assert_eq!(got, expected, "[{name}] {answers:?}");
        assert_eq!(answers[1]["held"]["state"], "paused", "[{name}] {}", answers[1]);
    }
}

/// A draft of the fix `version` to every version from 6.3.0r5 on, with its file.
async fn draft_of(app: &TestApp, f: &Fixture, version: &str, fixes: &str) -> String {
    let body = json!({
        "product": "screenos", "version": version, "platform": "ssg-500",
        "applies_to": [{"introduced": "6.3.0r5", "fixed": version}],
        "fixes": [fixes], "filename": format!("screenos-{version}.bin")
    });
    let (status, created) = app.post("/api/v1/patches", &f.vendor.token, body).await;
    assert_eq!(status, 201, "[{}] {created}", app.backend.name());
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(upload_file(app, &f.vendor.token, &id, file_bytes(4096)).await.0, 200);
    id
}

/// Runs the rollouts' job and reads the rollout, until `done` says so, for at most
/// `limit`; the last read.
async fn rollout_until(app: &TestApp, f: &Fixture, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        run_once(&app.state, Job::AdvanceRollouts).await.unwrap();
        let body = rollout(app, f, id).await;
        if done(&body) {
            return body;
        }
        assert!(
            started.elapsed() < limit,
            "[{}] not within {limit:?}: {body}",
            app.backend.name()
        );
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    }
}

#[actix_web::test]
async fn the_emergency_lane_takes_in_exposed_devices_only_ignores_windows_where_customers_opted_in_and_still_pauses() {
    for app in TestApp::each().await {
        let name = app.backend.name();
        let f = fixture(&app).await;
        support::patching::entitle_globex(&app, &f).await;
        // A routine fix is no emergency: the lane is refused for it.
        let routine = publish_advisory(
            &app,
            &f.vendor.token,
            json!({"title": "A routine fix", "summary": "Hardening.", "emergency": false,
                   "cvss_v3": "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
                   "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r5", "fixed": "6.3.0r30"}]}]}),
        )
        .await;
        let routine_patch = draft_of(&app, &f, "6.3.0r30", routine["id"].as_str().unwrap()).await;
        let (status, answer) = app
            .post(
                &format!("/api/v1/patches/{routine_patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [wave(100)], "emergency_lane": true}),
            )
            .await;
        assert_eq!(status, 422, "[{name}] {answer}");
        assert_eq!(answer["error"]["field"], "emergency_lane", "[{name}] {answer}");

        // Both customers keep a window that is shut now; acme opted in beforehand.
        let hour = (chrono::Utc::now() + chrono::TimeDelta::hours(2))
            .format("%H")
            .to_string();
        let shut = json!([{"schedule": format!("0 0 {hour} * * *"), "duration": "1h", "time_zone": "UTC"}]);
        for admin in [&f.acme.admin.token, &f.globex.admin.token] {
            let (status, body) = app.put("/api/v1/maintenance-windows", admin, shut.clone()).await;
            assert_eq!(status, 200, "[{name}] {body}");
        }
        let (status, body) = app
            .put(
                "/api/v1/emergency-policy",
                &f.acme.admin.token,
                json!({"ignore_windows": true}),
            )
            .await;
        assert_eq!(status, 200, "[{name}] {body}");
        let mut exposed = Vec::new();
        for n in 0..4 {
            exposed.push(
                app.enrol_device(&f.acme.admin.token, &format!("fw-{n}"), "6.3.0r20")
                    .await,
            );
        }
        let old = app.enrol_device(&f.acme.admin.token, "fw-old", "6.3.0r10").await;
        let theirs = app.enrol_device(&f.globex.admin.token, "gx-0", "6.3.0r20").await;

        let patch = draft_of(&app, &f, "6.3.0r21", &f.advisory).await;
        let mut lane_wave = wave(100);
        lane_wave["min_reports"] = json!(3);
        let (status, planned) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [lane_wave], "emergency_lane": true}),
            )
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        let id = planned["id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(&format!("/api/v1/patches/{patch}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "[{name}] {body}");
        let (status, body) = command(&app, &f, &id, "start", json!({"reason": "everyone exposed, now"})).await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(
            body["waves"][0]["counts"]["members"], 5,
            "[{name}] the exposed only: {body}"
        );

        // Exposed devices are offered it at once, opted-in acme's to install now,
        // globex's at its window; the device the advisory does not affect is not.
        for device in &exposed {
            let (status, answer) = app
                .post("/api/v1/device/poll", &device.token, json!({"version": "6.3.0r20"}))
                .await;
            assert_eq!(status, 200, "[{name}] {answer}");
            assert_eq!(answer["update"]["patch_id"], patch.as_str(), "[{name}] {answer}");
            assert_eq!(answer["update"]["install"], "now", "[{name}] {answer}");
            assert_eq!(answer["update"]["rollout"]["id"], id.as_str(), "[{name}] {answer}");
            assert_eq!(answer["update"]["rollout"]["wave"], 0, "[{name}] {answer}");
        }
        let (_, answer) = app
            .post("/api/v1/device/poll", &theirs.token, json!({"version": "6.3.0r20"}))
            .await;
        assert_eq!(answer["update"]["patch_id"], patch.as_str(), "[{name}] {answer}");
        assert_eq!(
            answer["update"]["install"], "deferred",
            "[{name}] globex did not opt in: {answer}"
        );
        let (_, answer) = app
            .post("/api/v1/device/poll", &old.token, json!({"version": "6.3.0r10"}))
            .await;
        assert!(
            answer["update"].is_null(),
            "[{name}] an unexposed device was offered: {answer}"
        );
        assert_eq!(answer["held"]["rollout"], id.as_str(), "[{name}] {answer}");

        // The lane still stops on its error bound.
        for device in &exposed[..3] {
            report(&app, device, &patch, "failed").await;
        }
        let paused = rollout_until(&app, &f, &id, Duration::from_secs(30), |r| r["state"] == "paused").await;
        assert!(
            paused["reason"].as_str().unwrap().contains("error threshold"),
            "[{name}] {paused}"
        );
    }
}

#[actix_web::test]
async fn a_simulated_fleet_of_a_thousand_pauses_in_its_first_wave_and_finishes_after_a_yank_and_a_fixed_patch() {
    for app in TestApp::each_with(&[
        ("poll_interval", "10s"),
        ("emergency_poll_interval", "10s"),
        ("enrollment_attempts_per_minute", "100000"),
    ])
    .await
    {
        let name = app.backend.name();
        let f = fixture(&app).await;
        let key = server_key(&app).await;
        let bad = fix_draft(&app, &f).await;
        let plan_wave = |percent| {
            let mut w = wave(percent);
            w["min_reports"] = json!(20);
            w["install_timeout"] = json!("1m");
            w
        };
        let plan = json!({"waves": [plan_wave(10), plan_wave(50), plan_wave(100)]});
        let (status, planned) = app
            .post(&format!("/api/v1/patches/{bad}/rollouts"), &f.vendor.token, plan)
            .await;
        assert_eq!(status, 201, "[{name}] {planned}");
        let id = planned["id"].as_str().unwrap().to_owned();
        let (status, body) = app
            .post(&format!("/api/v1/patches/{bad}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "[{name}] {body}");

        // A thousand agents, three in ten of them failing the bad build's install.
        let dir = tempfile::tempdir().unwrap();
        let mut base = screenos_agent(
            &app.base,
            dir.path(),
            Identity::Enrol(enrollment_token(&app, &f, 1000).await),
            &key,
            "6.3.0r20",
        );
        base.name = "sim".into();
        let mut fleet = simulate::start(FleetSpec {
            base,
            count: 1000,
            versions: vec!["6.3.0r20".into()],
            mix: "honest=7,fails_install=3".parse().unwrap(),
            work_dir: dir.path().join("fleet"),
            pull: None,
            slow_install: Duration::from_secs(1),
            start_spread: Duration::from_secs(5),
            fails_only: vec!["6.3.0r21".into()],
        })
        .await
        .unwrap();
        until("the fleet enrols", Duration::from_secs(180), || {
            fleet.snapshot().enrolled == 1000
        })
        .await;
        let (status, body) = command(&app, &f, &id, "start", json!({"reason": "canary first"})).await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(body["waves"][0]["counts"]["members"], 100, "[{name}] {body}");

        // The first wave's failures cross the bound: paused there, by itself.
        let paused = rollout_until(&app, &f, &id, Duration::from_secs(90), |r| r["state"] == "paused").await;
        assert_eq!(paused["current_wave"], 0, "[{name}] {paused}");
        assert!(
            paused["reason"].as_str().unwrap().contains("error threshold"),
            "[{name}] {paused}"
        );
        assert!(paused["waves"][1]["opened_at"].is_null(), "[{name}] {paused}");
        let snapshot = fleet.snapshot();
        assert!(
            snapshot.offered <= 100 && snapshot.install_failed >= 5,
            "[{name}] offered beyond the first wave: {snapshot:?}"
        );
        assert_eq!(
            snapshot.refused, 0,
            "[{name}] an agent refused a genuine answer: {snapshot:?}"
        );
        // The pause is in the log, and a device held back can check the claim.
        assert!(
            logged_states(&app, &id).await.contains(&"paused".to_owned()),
            "[{name}]"
        );
        let outsider = app.enrol_device(&f.acme.admin.token, "outsider", "6.3.0r20").await;
        let (_, answer) = app
            .post("/api/v1/device/poll", &outsider.token, json!({"version": "6.3.0r20"}))
            .await;
        let held = held_checks(&answer, &key).unwrap_or_else(|e| panic!("[{name}] {e}: {answer}"));
        assert_eq!(held.state.as_str(), "paused", "[{name}]");
        let (status, body) = app
            .delete(&format!("/api/v1/devices/{}", outsider.id), &f.acme.admin.token)
            .await;
        assert!((200..300).contains(&status), "[{name}] {status} {body}");

        // The bad build is yanked; a fixed one takes its place and the rollout resumes.
        let (status, body) = app
            .post(
                &format!("/api/v1/patches/{bad}/yank"),
                &f.vendor.token,
                json!({"reason": "fails to boot on three in ten"}),
            )
            .await;
        assert_eq!(status, 200, "[{name}] {body}");
        let (status, body) = command(&app, &f, &id, "resume", json!({})).await;
        assert_eq!(status, 409, "[{name}] resumed with the yanked patch: {body}");
        let fixed = draft_of(&app, &f, "6.3.0r22", &f.advisory).await;
        let (status, body) = command(
            &app,
            &f,
            &id,
            "resume",
            json!({"patch_id": fixed, "reason": "fixed build"}),
        )
        .await;
        assert_eq!(status, 200, "[{name}] {body}");
        assert_eq!(
            (body["state"].as_str(), body["patch_id"].as_str()),
            (Some("running"), Some(fixed.as_str()))
        );
        let (status, body) = app
            .post(&format!("/api/v1/patches/{fixed}/publish"), &f.vendor.token, json!({}))
            .await;
        assert_eq!(status, 201, "[{name}] {body}");

        rollout_until(&app, &f, &id, Duration::from_secs(240), |r| r["state"] == "finished").await;
        // Finished once the last wave met its threshold; the installs under way then
        // end too (or time out after a minute): none is left in between.
        let settled = |r: &Value| {
            r["waves"].as_array().unwrap().iter().all(|w| {
                ["waiting", "offered", "in_progress"]
                    .iter()
                    .all(|k| w["counts"][*k] == 0)
            })
        };
        let finished = rollout_until(&app, &f, &id, Duration::from_secs(90), settled).await;
        assert_eq!(finished["state"], "finished", "[{name}] {finished}");
        let mut members = 0;
        for wave in finished["waves"].as_array().unwrap() {
            let c = &wave["counts"];
            let open = ["waiting", "offered", "in_progress"].map(|k| c[k].as_u64().unwrap());
            assert_eq!(open, [0, 0, 0], "[{name}] stalled devices: {wave}");
            let ended = ["installed", "failed", "timed_out"].map(|k| c[k].as_u64().unwrap());
            assert_eq!(
                ended.iter().sum::<u64>(),
                c["members"].as_u64().unwrap(),
                "[{name}] {wave}"
            );
            members += c["members"].as_u64().unwrap();
        }
        assert_eq!(members, 1000, "[{name}] {finished}");
        let states = logged_states(&app, &id).await;
        assert_eq!(
            states.last().map(String::as_str),
            Some("finished"),
            "[{name}] {states:?}"
        );
        fleet.stop();
    }
}
