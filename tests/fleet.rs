//! The fleet end to end, on every backend: the ScreenOS emergency advisory and its
//! fix, devices of two customers polling, installing and reporting, and exposure as
//! each customer and the vendor see it; yanks, newer patches and narrowed ranges
//! reaching polls and exposure at once; enrolment tokens; bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use patchwarden::jobs::{run_once, Job};
use serde_json::{json, Value};
use support::patching::{download, enrollment_token, file_bytes, fixture, publish_patch};
use support::{error_code, TestApp};

struct Device {
    id: String,
    token: String,
}

async fn enrol(app: &TestApp, admin: &str, name: &str, version: &str) -> Device {
    let (status, body) = app
        .post(
            "/api/v1/devices",
            admin,
            json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version,
                   "labels": {"site": "berlin"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["token"].as_str().unwrap().starts_with("pwd_"));
    Device {
        id: body["id"].as_str().unwrap().to_owned(),
        token: body["token"].as_str().unwrap().to_owned(),
    }
}

async fn poll(app: &TestApp, device: &Device, version: &str) -> Value {
    let (status, body) = app
        .post("/api/v1/device/poll", &device.token, json!({"version": version}))
        .await;
    assert_eq!(status, 200, "poll: {body}");
    body
}

async fn report(app: &TestApp, device: &Device, patch: &str, state: &str, version: Option<&str>) -> (u16, Value) {
    let mut body = json!({"patch_id": patch, "state": state});
    if let Some(version) = version {
        body["version"] = json!(version);
    }
    app.post("/api/v1/device/report", &device.token, body).await
}

async fn exposure(app: &TestApp, token: &str, advisory: &str, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/advisories/{advisory}/exposure{query}"), token)
        .await;
    assert_eq!(status, 200, "exposure: {body}");
    body
}

fn counts(body: &Value) -> [i64; 5] {
    ["affected", "fixed", "unaffected", "unknown", "claimed_not_running"].map(|k| body[k].as_i64().unwrap())
}

async fn entitle_globex(app: &TestApp, f: &support::patching::Fixture) {
    let (status, _) = app
        .put(
            "/api/v1/customers/globex/entitlements",
            &f.vendor.token,
            json!({"products": ["screenos"]}),
        )
        .await;
    assert_eq!(status, 200);
}

async fn flush(app: &TestApp) {
    run_once(&app.state, Job::FlushObservations).await.unwrap();
}

#[actix_web::test]
async fn the_backdoor_fleet_from_advisory_to_fixed_devices() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        entitle_globex(&app, &f).await;
        let bytes = file_bytes(4096);
        let fix = publish_patch(&app, &f, "6.3.0r21", bytes.clone()).await;

        let r19 = enrol(&app, &f.acme.admin.token, "fw-r19", "6.3.0r19").await;
        let r20 = enrol(&app, &f.acme.admin.token, "fw-r20", "6.3.0r20").await;
        let old = enrol(&app, &f.acme.admin.token, "fw-6.2", "6.2.0r10").await;
        let theirs = enrol(&app, &f.globex.admin.token, "gx-r20", "6.3.0r20").await;

        // Polls offer the fix to exactly the affected devices, sooner again while
        // the emergency affects them.
        for (device, version) in [(&r19, "6.3.0r19"), (&r20, "6.3.0r20"), (&theirs, "6.3.0r20")] {
            let answer = poll(&app, device, version).await;
            let offer = &answer["update"];
            assert_eq!(offer["patch_id"], fix, "{answer}");
            assert_eq!(offer["version"], "6.3.0r21");
            assert_eq!(offer["emergency"], true);
            assert_eq!(offer["advisories"], json!([f.advisory]));
            assert_eq!(offer["size"], 4096);
            assert!(offer["signature"].as_str().unwrap().contains("trusted comment"));
            let interval = answer["poll_interval_s"].as_u64().unwrap();
            assert!((240..=300).contains(&interval), "emergency interval {interval}");
        }
        let answer = poll(&app, &old, "6.2.0r10").await;
        assert_eq!(answer["update"], Value::Null, "{answer}");
        assert!((1440..=1800).contains(&answer["poll_interval_s"].as_u64().unwrap()));
        // Nothing changed: the device holding the tag gets the short answer.
        let tag = answer["catalogue"].as_str().unwrap();
        let (_, again) = app
            .post(
                "/api/v1/device/poll",
                &old.token,
                json!({"version": "6.2.0r10", "catalogue": tag}),
            )
            .await;
        assert_eq!(again["unchanged"], true, "{again}");
        assert!(again.get("update").is_none());

        // The device downloads what it is offered, and only that.
        let got = download(&app, &r20.token, &fix, &[]).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().to_vec(), bytes);
        assert_eq!(download(&app, &old.token, &fix, &[]).await.status(), 404);

        // One installs and runs the fix; one claims it but keeps running r20.
        assert_eq!(report(&app, &r19, &fix, "downloading", None).await.0, 201);
        assert_eq!(report(&app, &r19, &fix, "installed", Some("6.3.0r21")).await.0, 201);
        assert_eq!(poll(&app, &r19, "6.3.0r21").await["update"], Value::Null);
        let (status, body) = report(&app, &r20, &fix, "installed", Some("6.3.0r21")).await;
        assert_eq!(status, 201, "{body}");
        poll(&app, &r20, "6.3.0r20").await;
        flush(&app).await;

        let acme = exposure(&app, &f.acme.admin.token, &f.advisory, "").await;
        assert_eq!(counts(&acme), [1, 1, 1, 0, 1], "acme: {acme}");
        let globex = exposure(&app, &f.globex.admin.token, &f.advisory, "").await;
        assert_eq!(counts(&globex), [1, 0, 0, 0, 0], "globex: {globex}");
        assert_eq!(globex["devices"].as_array().unwrap().len(), 1);
        assert_eq!(globex["devices"][0]["name"], "gx-r20", "globex sees only its own");
        let vendor = exposure(&app, &f.vendor.token, &f.advisory, "").await;
        assert_eq!(counts(&vendor), [2, 1, 1, 0, 1], "vendor: {vendor}");
        let grouped: Vec<(&str, i64)> = vendor["customers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["customer"].as_str().unwrap(), c["affected"].as_i64().unwrap()))
            .collect();
        assert_eq!(grouped, [("acme", 1), ("globex", 1)]);

        let claimed = exposure(&app, &f.acme.admin.token, &f.advisory, "?state=claimed_not_running").await;
        let names: Vec<&str> = claimed["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fw-r20"], "{claimed}");
        assert_eq!(claimed["devices"][0]["claimed_not_running"], true);
        let fixed = exposure(&app, &f.acme.admin.token, &f.advisory, "?state=fixed").await;
        assert_eq!(fixed["devices"][0]["name"], "fw-r19");
        assert_eq!(
            (fixed["total"].as_i64(), acme["total"].as_i64()),
            (Some(1), Some(3)),
            "totals from the counts"
        );
        assert_eq!(fixed["devices"][0]["version"], "6.3.0r21");
        let (status, listed) = app
            .get(
                &format!(
                    "/api/v1/devices?advisory={}&state=affected&label=site%3Dberlin",
                    f.advisory
                ),
                &f.acme.admin.token,
            )
            .await;
        assert_eq!((status, listed["total"].as_i64()), (200, Some(1)), "{listed}");
        let csv = app
            .client
            .get(app.url(&format!("/api/v1/advisories/{}/exposure.csv", f.advisory)))
            .bearer_auth(&f.acme.admin.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(csv.lines().count(), 4, "{csv}");
        assert!(
            csv.lines()
                .any(|l| l.contains("fw-r20") && l.contains(",affected,false,true,")),
            "{csv}"
        );

        // The device page's history: the polls folded into one row per version.
        let (_, detail) = app
            .get(&format!("/api/v1/devices/{}", r19.id), &f.acme.admin.token)
            .await;
        let versions: Vec<&str> = detail["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["6.3.0r21", "6.3.0r19"], "{detail}");
        let states: Vec<&str> = detail["reports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["state"].as_str().unwrap())
            .collect();
        assert_eq!(states, ["installed", "downloading"]);
        let (_, r20_detail) = app
            .get(&format!("/api/v1/devices/{}", r20.id), &f.acme.admin.token)
            .await;
        let history: Vec<(&str, &str, i64)> = r20_detail["observations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["version"].as_str().unwrap(),
                    o["source"].as_str().unwrap(),
                    o["times"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            history,
            [
                ("6.3.0r20", "poll", 1),
                ("6.3.0r21", "report", 1),
                ("6.3.0r20", "admin", 2)
            ],
            "enrolment and first poll folded, the report's claim between: {r20_detail}"
        );
        assert_eq!(r20_detail["version"], "6.3.0r20", "a report is a claim, not what runs");

        // A report for a patch never offered to the device is refused.
        let (status, body) = report(&app, &old, &fix, "installed", None).await;
        assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");

        // Yank: polls stop offering it at once; reports about it are refused.
        let (status, _) = app
            .post(
                &format!("/api/v1/patches/{fix}/yank"),
                &f.vendor.token,
                json!({"reason": "bricks SSG-500 with 1 GB RAM"}),
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(poll(&app, &r20, "6.3.0r20").await["update"], Value::Null);
        let (status, body) = report(&app, &r20, &fix, "failed", None).await;
        assert_eq!(status, 422, "a failed report needs a message: {body}");
        let (status, body) = app
            .post(
                "/api/v1/device/report",
                &r20.token,
                json!({"patch_id": fix, "state": "failed", "message": "checksum mismatch"}),
            )
            .await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("bricks SSG-500"),
            "{body}"
        );

        // A newer fix is offered.
        let newer = publish_patch(&app, &f, "6.3.0r22", file_bytes(1000)).await;
        assert_eq!(poll(&app, &r20, "6.3.0r20").await["update"]["patch_id"], newer);

        // A revision that narrows the range changes exposure at once.
        let revised = json!({
            "title": "Unauthorized code in ScreenOS", "summary": "Backdoor.",
            "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "emergency": true,
            "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r20"}]}],
            "change_summary": "6.3.0r20 was never affected"
        });
        let (status, body) = app
            .post(
                &format!("/api/v1/advisories/{}/revisions", f.advisory),
                &f.vendor.token,
                revised,
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let acme = exposure(&app, &f.acme.admin.token, &f.advisory, "").await;
        assert_eq!(counts(&acme), [0, 2, 1, 0, 0], "after the revision: {acme}");

        // Decommissioned: the token stops working, the history stays.
        let (status, _) = app
            .delete(&format!("/api/v1/devices/{}", r20.id), &f.acme.admin.token)
            .await;
        assert_eq!(status, 204);
        let (status, body) = app
            .post("/api/v1/device/poll", &r20.token, json!({"version": "6.3.0r20"}))
            .await;
        assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{body}");
        let (_, gone) = app
            .get(&format!("/api/v1/devices/{}", r20.id), &f.acme.admin.token)
            .await;
        assert!(gone["decommissioned_at"].is_string(), "{gone}");
        assert!(!gone["observations"].as_array().unwrap().is_empty());
        let acme = exposure(&app, &f.acme.admin.token, &f.advisory, "").await;
        assert_eq!(acme["fixed"], 1, "a decommissioned device no longer counts: {acme}");
    }
}

#[actix_web::test]
async fn enrolment_tokens_are_limited_and_say_why_they_refuse() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let (status, token) = app
            .post(
                "/api/v1/enrollment-tokens",
                &f.acme.admin.token,
                json!({"max_uses": 1, "expires_in": "1h", "label": "berlin rack"}),
            )
            .await;
        assert_eq!(status, 201, "{token}");
        let secret = token["token"].as_str().unwrap();
        let request = |name: &str| json!({"enrollment_token": secret, "name": name, "product": "screenos", "version": "6.3.0r20"});
        let (status, device) = app.post("/api/v1/device/enroll", "", request("fw-1")).await;
        assert_eq!(status, 201, "{device}");
        let (status, me) = app.get("/api/v1/me", device["token"].as_str().unwrap()).await;
        assert_eq!((status, me["customer"].as_str()), (200, Some("acme")), "{me}");
        let (status, body) = app.post("/api/v1/device/enroll", "", request("fw-2")).await;
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("used 1 of 1"),
            "{body}"
        );
        let (_, listed) = app.get("/api/v1/enrollment-tokens", &f.acme.admin.token).await;
        assert_eq!(listed[0]["uses"], 1);
        assert!(listed[0].get("token").is_none(), "the secret is shown once");

        let (status, body) = app
            .post(
                "/api/v1/device/enroll",
                "",
                json!({"enrollment_token": "pwe_nope", "name": "x", "product": "screenos", "version": "1"}),
            )
            .await;
        assert_eq!((status, error_code(&body)), (401, "unauthorized"), "{body}");

        let (_, second) = app
            .post("/api/v1/enrollment-tokens", &f.acme.admin.token, json!({"max_uses": 5}))
            .await;
        let id = second["id"].as_str().unwrap();
        assert_eq!(
            app.delete(&format!("/api/v1/enrollment-tokens/{id}"), &f.acme.admin.token)
                .await
                .0,
            204
        );
        let (status, body) = app
            .post(
                "/api/v1/device/enroll",
                "",
                json!({"enrollment_token": second["token"], "name": "x", "product": "screenos", "version": "6.3.0r20"}),
            )
            .await;
        assert_eq!(status, 403, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");

        // Not entitled: globex cannot enrol screenos devices.
        let (status, body) = app
            .post(
                "/api/v1/devices",
                &f.globex.admin.token,
                json!({"name": "x", "product": "screenos"}),
            )
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("product")),
            "{body}"
        );
    }
}

#[actix_web::test]
async fn bad_device_input_is_refused_and_writes_nothing() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let device = enrol(&app, &f.acme.admin.token, "fw-1", "6.3.0r20").await;
        let cases = [
            (json!({"version": "6.3.0r20", "colour": "red"}), 422),
            (json!({"version": 7}), 422),
            (json!({"version": "not a version!"}), 422),
            (json!({"version": "6.3.0r20", "image_sha256": "abc"}), 422),
            (json!({"version": "6.3.0r20", "platform": "isg-2000"}), 422),
            (json!({}), 422),
        ];
        for (body, expected) in cases {
            let (status, answer) = app.post("/api/v1/device/poll", &device.token, body.clone()).await;
            assert_eq!(status, expected, "{body} → {answer}");
            assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
        }
        let raw = app
            .client
            .post(app.url("/api/v1/device/poll"))
            .bearer_auth(&device.token)
            .header("content-type", "application/json")
            .body("{\"version\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status(), 400);
        let huge = json!({"version": "x".repeat(400_000)});
        assert_eq!(app.post("/api/v1/device/poll", &device.token, huge).await.0, 413);

        let last = if device.token.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &device.token[..device.token.len() - 1]);
        let (status, _) = app
            .post("/api/v1/device/poll", &forged, json!({"version": "6.3.0r20"}))
            .await;
        assert_eq!(status, 401);
        let (status, _) = app.get("/api/v1/patches", &device.token).await;
        assert_eq!(status, 403, "a device token is not a user's");
        let (status, _) = app
            .post(
                "/api/v1/device/poll",
                &f.acme.admin.token,
                json!({"version": "6.3.0r20"}),
            )
            .await;
        assert_eq!(status, 403, "a user's token is not a device's");
        let (status, body) = report(&app, &device, "not-an-id", "installed", None).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("patch_id")));
        let (status, _) = report(&app, &device, "01900000-0000-7000-8000-000000000000", "sideways", None).await;
        assert_eq!(status, 422);

        flush(&app).await;
        let (_, detail) = app
            .get(&format!("/api/v1/devices/{}", device.id), &f.acme.admin.token)
            .await;
        assert_eq!(detail["reports"], json!([]), "{detail}");
        let history = detail["observations"].as_array().unwrap();
        assert_eq!(history.len(), 1, "only the enrolment's version: {detail}");
        assert_eq!(history[0]["times"], 1);
    }
}

#[actix_web::test]
async fn enrolment_is_rate_limited_per_token_and_an_old_install_step_shows_as_stalled() {
    for app in TestApp::each_with(&[("enrollment_attempts_per_minute", "3")]).await {
        let f = fixture(&app).await;
        let (_, token) = app
            .post(
                "/api/v1/enrollment-tokens",
                &f.acme.admin.token,
                json!({"max_uses": 100}),
            )
            .await;
        let secret = token["token"].as_str().unwrap();
        let mut statuses = Vec::new();
        for n in 0..5 {
            let body = json!({"enrollment_token": secret, "name": format!("fw-{n}"), "product": "screenos",
                              "platform": "ssg-500", "version": "6.3.0r20"});
            statuses.push(app.post("/api/v1/device/enroll", "", body).await.0);
        }
        assert_eq!(
            statuses,
            [201, 201, 201, 429, 429],
            "the fourth attempt within the minute waits"
        );
        let (_, listed) = app.get("/api/v1/devices", &f.acme.admin.token).await;
        assert_eq!(listed["total"], 3);

        // A device that started downloading the fix hours ago and said nothing since.
        let fix = publish_patch(&app, &f, "6.3.0r21", file_bytes(64)).await;
        let device = enrol(&app, &f.acme.admin.token, "fw-slow", "6.3.0r20").await;
        assert_eq!(
            poll(&app, &device, "6.3.0r20").await["update"]["patch_id"],
            fix.as_str()
        );
        assert_eq!(report(&app, &device, &fix, "downloading", None).await.0, 201);
        let fresh = exposure(&app, &f.acme.admin.token, &f.advisory, "").await;
        assert_eq!(fresh["stalled"], 0, "{fresh}");
        let id: patchwarden::ids::DeviceId = device.id.parse().unwrap();
        app.db(move |conn| {
            use diesel::prelude::*;
            use patchwarden::db::schema::devices;
            let hours_ago = patchwarden::db::models::now() - chrono::TimeDelta::hours(3);
            diesel::update(devices::table.find(&id))
                .set(devices::report_at.eq(hours_ago))
                .execute(conn)?;
            Ok(())
        })
        .await;
        let later = exposure(&app, &f.acme.admin.token, &f.advisory, "?state=stalled").await;
        assert_eq!(later["stalled"], 1, "{later}");
        let names: Vec<&str> = later["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["fw-slow"]);
        assert_eq!(later["devices"][0]["stalled"], true);
    }
}

#[actix_web::test]
async fn devices_enrolling_at_once_are_all_enrolled() {
    for app in TestApp::each_with(&[("enrollment_attempts_per_minute", "1000")]).await {
        let f = fixture(&app).await;
        let secret = enrollment_token(&app, &f, 40).await;
        // Forty enrolments in flight together, while observations are flushed: each
        // is a write transaction that first reads (the token, the customer).
        let enrolments = (0..40).map(|n| {
            let body = json!({"enrollment_token": secret, "name": format!("fw-{n}"), "product": "screenos",
                              "version": "6.3.0r20"});
            let request = app.client.post(app.url("/api/v1/device/enroll")).json(&body).send();
            async move { request.await.unwrap().status().as_u16() }
        });
        let (statuses, _) = futures_util::future::join(futures_util::future::join_all(enrolments), flush(&app)).await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        let (_, listed) = app.get("/api/v1/devices?per_page=100", &f.acme.admin.token).await;
        assert_eq!(listed["total"].as_i64(), Some(40), "{listed}");
    }
}

/// The live devices counted straight from `devices`, as the tallies must sum up.
fn counted(conn: &mut patchwarden::db::DbConnection) -> Vec<(String, Option<String>, Option<String>, i64)> {
    use diesel::prelude::*;
    use patchwarden::db::schema::devices;
    let mut rows: Vec<(String, Option<String>, Option<String>, i64)> = devices::table
        .filter(devices::decommissioned_at.is_null())
        .group_by((devices::customer_id, devices::version, devices::report_state))
        .select((
            devices::customer_id,
            devices::version,
            devices::report_state,
            diesel::dsl::count_star(),
        ))
        .load(conn)
        .unwrap();
    rows.sort();
    rows
}

fn tallied(conn: &mut patchwarden::db::DbConnection) -> Vec<(String, Option<String>, Option<String>, i64)> {
    use diesel::prelude::*;
    use patchwarden::db::schema::products;
    let products: Vec<patchwarden::ids::ProductId> = products::table.select(products::id).load(conn).unwrap();
    let mut merged: std::collections::BTreeMap<(String, Option<String>, Option<String>), i64> = Default::default();
    for g in patchwarden::db::models::exposure::device_groups(conn, &products, None).unwrap() {
        *merged
            .entry((g.customer_id.to_string(), g.version, g.report_state))
            .or_default() += g.count;
    }
    merged.into_iter().map(|((c, v, r), n)| (c, v, r, n)).collect()
}

#[actix_web::test]
async fn exposure_tallies_follow_every_change_and_survive_folding() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let patch = publish_patch(&app, &f, "6.3.0r21", file_bytes(512)).await;
        let mut devices = Vec::new();
        for (n, version) in ["6.3.0r19", "6.3.0r20", "6.3.0r20", "6.2.0r10", "6.3.0r19"]
            .iter()
            .enumerate()
        {
            devices.push(enrol(&app, &f.acme.admin.token, &format!("fw-{n}"), version).await);
        }
        entitle_globex(&app, &f).await;
        let other = enrol(&app, &f.globex.admin.token, "gx-1", "6.3.0r20").await;
        // Versions move (polls, flushed), install steps are reported, one device leaves.
        poll(&app, &devices[0], "6.3.0r20").await;
        poll(&app, &devices[1], "6.3.0r20").await;
        assert_eq!(report(&app, &devices[1], &patch, "downloading", None).await.0, 201);
        assert_eq!(
            report(&app, &devices[1], &patch, "installed", Some("6.3.0r21")).await.0,
            201
        );
        poll(&app, &devices[1], "6.3.0r21").await;
        poll(&app, &other, "6.3.0r21").await;
        flush(&app).await;
        let (status, _) = app
            .delete(&format!("/api/v1/devices/{}", devices[3].id), &f.acme.admin.token)
            .await;
        assert_eq!(status, 204);
        let (truth, tallies) = app.db(|conn| Ok((counted(conn), tallied(conn)))).await;
        assert_eq!(tallies, truth);
        assert_eq!(truth.iter().map(|r| r.3).sum::<i64>(), 5, "{truth:?}");

        let before = exposure(&app, &f.vendor.token, &f.advisory, "").await;
        let folded = run_once(&app.state, Job::FoldTallies).await.unwrap();
        assert!(folded > 0, "there were tallies to fold");
        assert_eq!(
            run_once(&app.state, Job::FoldTallies).await.unwrap(),
            0,
            "folded already"
        );
        let (truth, tallies, rows) = app
            .db(|conn| {
                use diesel::prelude::*;
                let rows: i64 = patchwarden::db::schema::device_tallies::table
                    .count()
                    .get_result(conn)?;
                Ok((counted(conn), tallied(conn), rows))
            })
            .await;
        assert_eq!(tallies, truth);
        assert_eq!(rows as usize, truth.len(), "one row per group after folding");
        let after = exposure(&app, &f.vendor.token, &f.advisory, "").await;
        assert_eq!(counts(&after), counts(&before), "{after}");
        assert_eq!(after["fixed"].as_i64(), Some(2), "{after}");
    }
}

#[actix_web::test]
async fn a_bulk_import_is_tallied_whole_and_its_devices_leave_the_tallies_one_by_one() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let before = enrol(&app, &f.acme.admin.token, "fw-api", "6.3.0r19").await;
        // More devices than the small-write path takes in one statement, in five
        // groups by version (one without a version).
        let versions = [
            Some("6.3.0r19"),
            Some("6.3.0r20"),
            Some("6.2.0r10"),
            Some("6.3.0r21"),
            None,
        ];
        let drafts: Vec<patchwarden::services::fleet::devices::DeviceDraft> = (0..500)
            .map(|n| {
                let mut draft = json!({"name": format!("imp-{n:03}"), "product": "screenos", "platform": "ssg-500"});
                if let Some(version) = versions[n % versions.len()] {
                    draft["version"] = json!(version);
                }
                serde_json::from_value(draft).unwrap()
            })
            .collect();
        let (sealing, outbound) = (app.state.services.sealing.clone(), app.state.services.outbound.clone());
        let imported = app
            .db(move |conn| patchwarden::services::fleet::devices::import(conn, &sealing, &outbound, "acme", drafts))
            .await;
        assert_eq!(imported.len(), 500, "[{backend}]");
        let (truth, tallies) = app.db(|conn| Ok((counted(conn), tallied(conn)))).await;
        assert_eq!(tallies, truth, "[{backend}]");
        assert_eq!(truth.iter().map(|r| r.3).sum::<i64>(), 501, "[{backend}] {truth:?}");
        assert_eq!(
            truth.iter().find(|r| r.1.as_deref() == Some("6.3.0r19")).map(|r| r.3),
            Some(101),
            "[{backend}] {truth:?}"
        );
        // Leaving and moving are still counted per device.
        for device in [
            &before.id,
            &imported[0].device.id.to_string(),
            &imported[4].device.id.to_string(),
        ] {
            let (status, _) = app
                .delete(&format!("/api/v1/devices/{device}"), &f.acme.admin.token)
                .await;
            assert_eq!(status, 204, "[{backend}]");
        }
        run_once(&app.state, Job::FoldTallies).await.unwrap();
        let (truth, tallies) = app.db(|conn| Ok((counted(conn), tallied(conn)))).await;
        assert_eq!(tallies, truth, "[{backend}]");
        assert_eq!(truth.iter().map(|r| r.3).sum::<i64>(), 498, "[{backend}] {truth:?}");
    }
}

#[actix_web::test]
async fn a_malformed_enrolment_token_body_is_refused_naming_the_field_and_creates_nothing() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let admin = &f.acme.admin.token;
        for (body, field) in [
            (r#"{"max_uses": 3, "colour": "red"}"#, None),
            (r#"{"max_uses": "3"}"#, Some("max_uses")),
            (r#"{"max_uses": 1.5}"#, Some("max_uses")),
            (r#"{"expires_in": 3600}"#, Some("expires_in")),
            (r#"{"expires_in": ["1h"]}"#, Some("expires_in")),
        ] {
            let response = app
                .client
                .post(app.url("/api/v1/enrollment-tokens"))
                .bearer_auth(admin)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, answer) = support::status_and_json(response).await;
            assert_eq!(status, 422, "[{backend}] {body}: {answer}");
            match field {
                Some(field) => assert_eq!(answer["error"]["field"], field, "[{backend}] {body}: {answer}"),
                None => assert!(
                    answer["error"]["message"].as_str().unwrap().contains("colour"),
                    "[{backend}] {body}: {answer}"
                ),
            }
        }
        let response = app
            .client
            .post(app.url("/api/v1/enrollment-tokens"))
            .bearer_auth(admin)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "[{backend}] malformed JSON");
        let (_, listed) = app.get("/api/v1/enrollment-tokens", admin).await;
        assert_eq!(listed, json!([]), "[{backend}] no token was made from a refused body");
        // No body at all: a token with the defaults.
        let response = app
            .client
            .post(app.url("/api/v1/enrollment-tokens"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            201,
            "[{backend}] an empty body takes the defaults"
        );
    }
}

#[actix_web::test]
async fn enrolment_checks_the_token_before_it_judges_the_pull_url() {
    for app in TestApp::each_with(&[("outbound_deny", "127.0.0.0/8")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let request = |token: &str| {
            json!({"enrollment_token": token, "name": "fw-pulled", "product": "screenos",
                   "version": "6.3.0r20", "pull_url": "http://localhost:9/version"})
        };
        // An invalid token learns nothing of how the URL resolves or is judged.
        let forged = "pwe_0123456789abcdef01234567_0123456789abcdef0123456789abcdef0123456789abcdef";
        let (status, body) = app.post("/api/v1/device/enroll", "", request(forged)).await;
        assert_eq!((status, error_code(&body)), (401, "unauthorized"), "[{backend}] {body}");
        let said = body.to_string();
        assert!(
            !said.contains("127.0.0.1") && !said.contains("denied") && !said.contains("pull_url"),
            "[{backend}] the refusal tells an unauthenticated caller about the URL: {said}"
        );
        // A genuine token is told why its URL is refused, and enrols nothing.
        let secret = enrollment_token(&app, &f, 1).await;
        let (status, body) = app.post("/api/v1/device/enroll", "", request(&secret)).await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (422, Some("pull_url")),
            "[{backend}] {body}"
        );
        let (_, listed) = app.get("/api/v1/enrollment-tokens", &f.acme.admin.token).await;
        assert_eq!(listed[0]["uses"], 0, "[{backend}] a refused enrolment spends nothing");
    }
}

#[actix_web::test]
async fn a_bearer_that_is_no_token_is_unauthenticated_on_the_device_routes() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        for garbage in ["garbage", "pwt_nope", "pwd_0000"] {
            let (status, body) = app
                .post("/api/v1/device/poll", garbage, json!({"version": "6.3.0r20"}))
                .await;
            assert_eq!(
                (status, error_code(&body)),
                (401, "unauthorized"),
                "[{backend}] bearer `{garbage}`: {body}"
            );
        }
        // A genuine user token is known, just not a device's: forbidden.
        let (status, body) = app
            .post(
                "/api/v1/device/poll",
                &f.acme.admin.token,
                json!({"version": "6.3.0r20"}),
            )
            .await;
        assert_eq!(status, 403, "[{backend}] {body}");
    }
}

#[actix_web::test]
async fn spending_an_enrolment_token_checks_revocation_and_expiry_in_the_same_statement() {
    use patchwarden::db::models::{now, EnrollmentToken};
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let (status, created) = app
            .post(
                "/api/v1/enrollment-tokens",
                &f.acme.admin.token,
                json!({"max_uses": 5, "expires_in": "1h"}),
            )
            .await;
        assert_eq!(status, 201, "[{backend}] {created}");
        let secret = created["token"].as_str().unwrap().to_owned();
        // Read as usable, then revoked by another transaction before the spend.
        let spent = app
            .db(move |conn| {
                let lookup = secret.split('_').nth(1).unwrap_or_default().to_owned();
                let token = EnrollmentToken::find_by_lookup(conn, &lookup)?.expect("the token");
                let usable_now = EnrollmentToken::spend(conn, &token.id, now())?;
                EnrollmentToken::revoke(conn, &token.id, now())?;
                let after_revoke = EnrollmentToken::spend(conn, &token.id, now())?;
                Ok((usable_now, after_revoke))
            })
            .await;
        assert_eq!(spent, (true, false), "[{backend}] a revoked token was spent");

        let (_, second) = app
            .post(
                "/api/v1/enrollment-tokens",
                &f.acme.admin.token,
                json!({"max_uses": 5, "expires_in": "1h"}),
            )
            .await;
        let secret = second["token"].as_str().unwrap().to_owned();
        let past_expiry = app
            .db(move |conn| {
                let lookup = secret.split('_').nth(1).unwrap_or_default().to_owned();
                let token = EnrollmentToken::find_by_lookup(conn, &lookup)?.expect("the token");
                let later = token.expires_at + chrono::Duration::seconds(1);
                Ok(EnrollmentToken::spend(conn, &token.id, later)?)
            })
            .await;
        assert!(!past_expiry, "[{backend}] an expired token was spent");
    }
}

#[actix_web::test]
async fn a_device_past_its_budget_is_answered_429_from_memory_and_others_are_not() {
    for app in TestApp::each_with(&[("device_requests_per_minute", "5")]).await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let greedy = enrol(&app, &f.acme.admin.token, "fw-greedy", "6.3.0r20").await;
        let quiet = enrol(&app, &f.acme.admin.token, "fw-quiet", "6.3.0r20").await;
        let poll = |token: String| {
            let request = app
                .client
                .post(app.url("/api/v1/device/poll"))
                .bearer_auth(token)
                .json(&json!({"version": "6.3.0r20"}))
                .send();
            async move { request.await.unwrap() }
        };
        let mut answered = Vec::new();
        for _ in 0..20 {
            let response = poll(greedy.token.clone()).await;
            answered.push(response.status().as_u16());
            if response.status() == 429 {
                let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "[{backend}] Retry-After {wait}");
            }
        }
        assert_eq!(
            answered.iter().filter(|s| **s == 200).count(),
            5,
            "[{backend}] the budget of five, then refusals: {answered:?}"
        );
        assert!(answered[5..].iter().all(|s| *s == 429), "[{backend}] {answered:?}");
        // Reports spend from the same budget.
        let (status, _) = app
            .post(
                "/api/v1/device/report",
                &greedy.token,
                json!({"patch_id": "00000000-0000-0000-0000-000000000000", "state": "downloading"}),
            )
            .await;
        assert_eq!(status, 429, "[{backend}] a report past the budget");
        // Another device of the same customer still has all of its own.
        for n in 0..5 {
            assert_eq!(
                poll(quiet.token.clone()).await.status(),
                200,
                "[{backend}] quiet poll {n}"
            );
        }
        // The refusals are counted by why.
        assert_eq!(app.refusals("rate_limited", "device").await, 16, "[{backend}]");
    }
}

#[actix_web::test]
async fn a_queue_longer_than_one_batch_is_written_whole_by_one_flush() {
    use diesel::prelude::*;
    use patchwarden::db::schema::{devices, observations};
    use patchwarden::domain::ObservationSource;
    use patchwarden::ids::DeviceId;
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let mut fleet = Vec::new();
        for n in 0..3 {
            fleet.push(enrol(&app, &f.acme.admin.token, &format!("fw-{n}"), "6.3.0r20").await);
        }
        let ids: Vec<DeviceId> = fleet.iter().map(|d| d.id.parse().unwrap()).collect();
        // 25,000 sightings that do not fold (each device alternates between two
        // versions, as reports), then a poll of each that moves what it runs.
        let queue = &app.state.fleet.queue;
        // The instance's own flush job waits while the queue fills.
        let filling = app.state.fleet.flushing().await;
        // After the enrolment's own sighting, one second apart.
        let start = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(1);
        let per_device = 25_000 / ids.len();
        for step in 0..per_device {
            for id in &ids {
                let version = if step % 2 == 0 { "6.3.0r21" } else { "6.3.0r20" };
                let at = start + chrono::TimeDelta::seconds(step as i64);
                queue.observe(id.to_bytes().unwrap(), version, None, ObservationSource::Report, at);
            }
        }
        let end = start + chrono::TimeDelta::seconds(per_device as i64 + 1);
        let finals = ["6.3.0r21", "6.3.0r19", "6.3.0r22"];
        for (id, version) in ids.iter().zip(finals) {
            queue.observe(id.to_bytes().unwrap(), version, None, ObservationSource::Poll, end);
        }
        assert!(queue.len() > 20_000, "[{backend}] more than one batch waits");
        drop(filling);
        flush(&app).await;
        assert_eq!(queue.len(), 0, "[{backend}] one flush wrote every batch");

        let expected = ids.clone();
        let rows = app
            .db(move |conn| {
                let mut found = Vec::new();
                for id in &expected {
                    let count: i64 = observations::table
                        .filter(observations::device_id.eq(id))
                        .count()
                        .get_result(conn)?;
                    let (latest, version): (Option<String>, Option<String>) = devices::table
                        .find(id)
                        .select((devices::latest_observation_id, devices::version))
                        .first(conn)?;
                    let newest: (String, String) = observations::table
                        .filter(observations::device_id.eq(id))
                        .order((observations::last_seen_at.desc(), observations::id.desc()))
                        .select((observations::id, observations::version))
                        .first(conn)?;
                    found.push((count, latest, version, newest));
                }
                Ok::<_, patchwarden::services::ServiceError>(found)
            })
            .await;
        for ((count, latest, version, (newest, newest_version)), wanted) in rows.into_iter().zip(finals) {
            // The enrolment's row, one per sighting and the poll's (the last report
            // saw 6.3.0r20 or 6.3.0r21; a poll that says the same folds into it).
            let sightings = per_device as i64 + 1 - i64::from(wanted == "6.3.0r21" && per_device % 2 == 1);
            assert_eq!(count, 1 + sightings, "[{backend}] history rows");
            assert_eq!(
                latest.as_deref(),
                Some(newest.as_str()),
                "[{backend}] the newest row is the latest"
            );
            assert_eq!(newest_version, wanted, "[{backend}]");
            assert_eq!(
                version.as_deref(),
                Some(wanted),
                "[{backend}] the poll moved what it runs"
            );
        }
    }
}
