//! The consoles for the worst day, on every backend: a customer admin's home is its
//! fleet's state with the emergency first; the vendor's home shows each customer's
//! progress on every open emergency, most exposed first, overdue highlighted, sorted
//! as asked; the customer list counts against the current emergency; a device's page
//! says per advisory whether it is exposed and why; the device list pages by keyset
//! in every order; people are invited, signed out and removed on screens; the log
//! page names devices and users and links each entry to a proof that verifies; and
//! every screen, walked from the route table, shows a moment one way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::devices::{enrol, poll};
use support::patching::{entitle_globex, fixture, Fixture};
use support::{csrf_field, sign_in, Actor, TestApp};

/// Acme: three devices (two exposed, one fixed); globex: one exposed. The
/// emergency's deadline is moved into the past, so exposed devices are overdue.
async fn fleet(app: &TestApp) -> (Fixture, Vec<Value>) {
    let f = fixture(app).await;
    entitle_globex(app, &f).await;
    let mut devices = Vec::new();
    for (name, version) in [("fw-a", "6.3.0r20"), ("fw-b", "6.3.0r19"), ("fw-c", "6.3.0r21")] {
        devices.push(enrol(app, &f, name, version).await);
    }
    let body = json!({"name": "gx-1", "product": "screenos", "version": "6.3.0r20"});
    let (status, globex_device) = app.post("/api/v1/devices", &f.globex.admin.token, body).await;
    assert_eq!(status, 201, "{globex_device}");
    devices.push(globex_device);
    let revision = json!({
        "title": "Unauthorized code in ScreenOS", "summary": "Backdoor.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "emergency": true,
        "fix_deadline": "2026-01-01T00:00:00Z", "change_summary": "A deadline.",
        "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
    });
    let (status, body) = app
        .post(
            &format!("/api/v1/advisories/{}/revisions", f.advisory),
            &f.vendor.token,
            revision,
        )
        .await;
    assert_eq!(status, 201, "[{}] {body}", app.backend.name());
    (f, devices)
}

/// The text of the first element after `marker` up to `end`.
fn between<'a>(html: &'a str, marker: &str, end: &str) -> &'a str {
    let start = html.find(marker).unwrap_or_else(|| panic!("no `{marker}` in {html}")) + marker.len();
    let stop = html[start..].find(end).unwrap() + start;
    &html[start..stop]
}

#[actix_web::test]
async fn a_customer_admins_home_leads_with_the_emergency_its_counts_and_deadline() {
    for app in TestApp::each().await {
        let (f, _) = fleet(&app).await;
        let session = sign_in(&app, &f.acme.admin).await;
        let (status, html) = app.page(&session, "/").await;
        assert_eq!(status, 200, "[{}] {html}", app.backend.name());
        let emergency = html.find("class=\"exposure emergency\"").expect("the emergency");
        let anomalies = html.find("Open anomalies").unwrap();
        assert!(emergency < anomalies, "the emergency is not first");
        assert!(html.contains("id=\"customer-name\""), "the home names the customer");
        assert!(
            between(&html, "class=\"deadline\">", "<").starts_with("2026-01-01 00:00:00 UTC ("),
            "{html}"
        );
        assert!(between(&html, "class=\"time-left overdue\">", "<").starts_with("overdue by "));
        assert_eq!(
            between(&html, "<td class=\"affected\"><a href=\"", "\""),
            format!("/fleet/devices?advisory={}&amp;state=affected", f.advisory)
        );
        assert_eq!(between(&html, "&amp;state=affected\">", "<"), "2");
        assert_eq!(between(&html, "<td class=\"fixed\">", "<"), "1");
        assert_eq!(between(&html, "<td class=\"overdue\">", "<"), "2");
        assert!(html.contains("The 2 devices still exposed"), "{html}");
        assert!(html.contains("<svg class=\"chart adoption\""));
        // Globex's admin sees its own one device, not acme's.
        let session = sign_in(&app, &f.globex.admin).await;
        let html = app.page(&session, "/").await.1;
        assert_eq!(between(&html, "&amp;state=affected\">", "<"), "1");
    }
}

#[actix_web::test]
async fn the_vendors_home_shows_each_customers_progress_most_exposed_first_and_sorts() {
    for app in TestApp::each().await {
        let (f, _) = fleet(&app).await;
        let session = sign_in(&app, &f.vendor).await;
        let (status, html) = app.page(&session, "/").await;
        assert_eq!(status, 200, "[{}] {html}", app.backend.name());
        let table = between(&html, &format!("id=\"progress-{}\"", f.advisory), "</table>");
        let order: Vec<&str> = table
            .match_indices("data-customer=\"")
            .map(|(at, m)| between(&table[at..], m, "\""))
            .collect();
        assert_eq!(order, ["acme", "globex"], "most exposed first");
        assert!(
            table.contains("class=\"customer overdue\" data-customer=\"acme\""),
            "{table}"
        );
        assert!(table.contains("href=\"/fleet?customer=acme\""));
        assert!(
            html.contains("All customers: <strong class=\"affected\">3</strong> affected"),
            "{html}"
        );
        // Furthest along first: globex has fixed none of one, acme one of three.
        let html = app.page(&session, "/?sort=fixed").await.1;
        let table = between(&html, &format!("id=\"progress-{}\"", f.advisory), "</table>");
        assert!(table.find("\"acme\"").unwrap() < table.find("\"globex\"").unwrap());
        let (status, _) = app.page(&session, "/?sort=loudest").await;
        assert_eq!(status, 400, "an unknown order is refused");

        // The customer list counts against the same emergency.
        let html = app.page(&session, "/vendor/customers").await.1;
        assert!(html.contains(&format!(
            "the open emergency <a href=\"/advisories/{0}\">{0}</a>",
            f.advisory
        )));
        let acme = between(&html, "data-customer=\"acme\"", "</tr>");
        assert!(
            acme.contains("<td class=\"devices\">3</td>") && acme.contains("<td class=\"affected\">2</td>"),
            "{acme}"
        );
        assert!(
            acme.contains("<td class=\"fixed\">1</td>") && acme.contains("<td class=\"overdue\">2</td>"),
            "{acme}"
        );
        assert!(acme.starts_with(" class=\"overdue\""), "{acme}");
    }
}

#[actix_web::test]
async fn a_device_page_says_per_advisory_whether_it_is_exposed_and_why() {
    for app in TestApp::each().await {
        let (f, devices) = fleet(&app).await;
        let session = sign_in(&app, &f.acme.admin).await;
        let page = |id: &Value| format!("/fleet/devices/{}", id["id"].as_str().unwrap());
        let html = app.page(&session, &page(&devices[0])).await.1;
        let row = between(&html, &format!("data-advisory=\"{}\"", f.advisory), "</tr>");
        assert!(
            row.contains("<strong>exposed</strong>"),
            "[{}] {row}",
            app.backend.name()
        );
        assert!(
            row.contains("runs 6.3.0r20, inside the affected range from 6.3.0r12 up to (not including) 6.3.0r21; the fix deadline has passed"),
            "{row}"
        );
        let html = app.page(&session, &page(&devices[2])).await.1;
        let row = between(&html, &format!("data-advisory=\"{}\"", f.advisory), "</tr>");
        assert!(
            row.contains("not exposed (fixed)") && row.contains("runs 6.3.0r21, past the affected range"),
            "{row}"
        );

        // A device that reports the fix installed yet runs the old version.
        let token = devices[1]["token"].as_str().unwrap();
        let patch = support::patching::publish_patch(&app, &f, "6.3.0r21", support::patching::file_bytes(64)).await;
        let report = json!({"patch_id": patch, "state": "installed", "version": "6.3.0r21"});
        let (status, body) = app.post("/api/v1/device/report", token, report).await;
        assert!((200..300).contains(&status), "{status} {body}");
        poll(&app, token, json!({"version": "6.3.0r19"})).await;
        patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .unwrap();
        let html = app.page(&session, &page(&devices[1])).await.1;
        let row = between(&html, &format!("data-advisory=\"{}\"", f.advisory), "</tr>");
        assert!(
            row.contains("it reported the fix installed, yet still runs an affected version"),
            "{row}"
        );
    }
}

/// Every device name a walk of the list in `sort` meets, following its next-page links.
async fn walk(app: &TestApp, session: &str, sort: &str, per_page: usize) -> Vec<String> {
    let mut names = Vec::new();
    let mut path = format!("/fleet/devices?sort={sort}&per_page={per_page}");
    loop {
        let (status, html) = app.page(session, &path).await;
        assert_eq!(status, 200, "[{}] {path}: {html}", app.backend.name());
        let page: Vec<String> = html
            .match_indices("<th scope=\"row\"><a href=\"/fleet/devices/")
            .map(|(at, m)| between(&html[at + m.len()..], "\">", "<").to_owned())
            .collect();
        assert!(page.len() <= per_page);
        names.extend(page);
        match html.find("id=\"next-page\"") {
            Some(_) => {
                path = between(&html, "id=\"next-page\" href=\"", "\"")
                    .replace("&amp;", "&")
                    .replace("&#x2F;", "/");
            }
            None => return names,
        }
    }
}

#[actix_web::test]
async fn the_device_list_pages_by_keyset_in_every_order_without_gaps_or_repeats() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let mut seen = Vec::new();
        // Twenty devices; the odd ones poll (one at a time, so their times differ).
        for n in 0..20 {
            let name = format!("fw-{:02}", (n * 7) % 20);
            let device = enrol(&app, &f, &name, "6.3.0r20").await;
            if n % 2 == 1 {
                poll(&app, device["token"].as_str().unwrap(), json!({"version": "6.3.0r20"})).await;
                patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
                    .await
                    .unwrap();
                seen.push(name);
            }
        }
        let session = sign_in(&app, &f.acme.admin).await;
        let mut by_name: Vec<String> = (0..20).map(|n| format!("fw-{n:02}")).collect();
        assert_eq!(
            walk(&app, &session, "name", 6).await,
            by_name,
            "[{}]",
            app.backend.name()
        );
        by_name.reverse();
        assert_eq!(walk(&app, &session, "name_desc", 7).await, by_name);
        // Seen most recently first (the last to poll first), then those never seen.
        let newest = walk(&app, &session, "seen_newest", 4).await;
        let mut expected: Vec<String> = seen.iter().rev().cloned().collect();
        assert_eq!(&newest[..seen.len()], &expected[..], "{newest:?}");
        assert_eq!(newest.len(), 20);
        // Silent longest first: the never seen, then the first to poll.
        let oldest = walk(&app, &session, "seen_oldest", 3).await;
        expected.reverse();
        assert_eq!(&oldest[10..], &expected[..], "{oldest:?}");
        let mut all = oldest.clone();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 20, "a page repeated or skipped a device: {oldest:?}");

        let (status, html) = app.page(&session, "/fleet/devices?after=not-a-device").await;
        assert_eq!(status, 422, "{html}");
        assert!(html.contains("after"), "{html}");
        let absent = "01900000-0000-7000-8000-000000000000";
        let (status, _) = app.page(&session, &format!("/fleet/devices?after={absent}")).await;
        assert_eq!(status, 422);
    }
}

/// Invites `email` as `role` on the people screen; the one-time password.
async fn invite(app: &TestApp, session: &str, email: &str, role: &str) -> String {
    let csrf = csrf_field(&app.page(session, "/people").await.1);
    let (status, _, html) = app
        .post_form(
            session,
            "/people",
            &[("csrf_token", csrf.as_str()), ("email", email), ("role", role)],
        )
        .await;
    assert_eq!(status, 201, "[{}] {html}", app.backend.name());
    assert!(
        html.contains(&format!("<strong id=\"invited-email\">{email}</strong>")),
        "{html}"
    );
    between(&html, "<code id=\"one-time-password\">", "<").to_owned()
}

#[actix_web::test]
async fn people_are_invited_with_a_one_time_password_signed_out_and_removed_on_screens() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let admin = sign_in(&app, &f.acme.admin).await;
        let html = app.page(&admin, "/people").await.1;
        assert!(html.contains("data-email=\"admin@acme.example\""), "{html}");
        assert!(!html.contains("globex"), "another customer's people are not listed");
        // Forms want the session's CSRF token.
        for fields in [
            vec![("email", "x@acme.example"), ("role", "customer-admin")],
            vec![
                ("csrf_token", "forged"),
                ("email", "x@acme.example"),
                ("role", "customer-admin"),
            ],
        ] {
            let (status, _, _) = app.post_form(&admin, "/people", &fields).await;
            assert_eq!(status, 403);
        }
        // A customer admin gives only its own role.
        let csrf = csrf_field(&html);
        let (status, _, html) = app
            .post_form(
                &admin,
                "/people",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("email", "boss@acme.example"),
                    ("role", "vendor-admin"),
                ],
            )
            .await;
        assert_eq!(status, 403, "{html}");
        let (status, _, html) = app
            .post_form(
                &admin,
                "/people",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("email", "not an address"),
                    ("role", "customer-admin"),
                ],
            )
            .await;
        assert_eq!(status, 422, "{html}");
        assert!(html.contains("id=\"form-error\""));

        let password = invite(&app, &admin, "colleague@acme.example", "customer-admin").await;
        assert_eq!(password.len(), 24);
        let html = app.page(&admin, "/people").await.1;
        assert!(!html.contains(&password), "the password is shown once");
        assert!(between(&html, "data-email=\"colleague@acme.example\"", "</tr>").contains("holds a one-time password"));

        // The colleague signs in; every page but setting a password sends it there.
        let colleague = Actor {
            email: "colleague@acme.example".into(),
            password: password.clone(),
            token: String::new(),
            user_id: String::new(),
        };
        let session = sign_in(&app, &colleague).await;
        for path in ["/", "/fleet", "/people", "/account"] {
            let response = app
                .client
                .get(app.url(path))
                .header("cookie", &session)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 303, "{path}");
            assert_eq!(response.headers()["location"], "/account/password", "{path}");
        }
        let response = app
            .client
            .get(app.url("/api/v1/me"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "the API refuses a one-time sign-in too");
        let html = app.page(&session, "/account/password").await.1;
        assert!(
            html.contains("id=\"one-time-notice\"") && !html.contains("name=\"current\""),
            "{html}"
        );
        let csrf = csrf_field(&html);
        let (status, _, html) = app
            .post_form(
                &session,
                "/account/password",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("password", "a long new secret"),
                    ("repeat", "another one"),
                ],
            )
            .await;
        assert_eq!(status, 422, "{html}");
        let (status, location, _) = app
            .post_form(
                &session,
                "/account/password",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("password", "a long new secret"),
                    ("repeat", "a long new secret"),
                ],
            )
            .await;
        assert_eq!((status, location.as_str()), (303, "/"));
        let (status, html) = app.page(&session, "/").await;
        assert_eq!(status, 200);
        assert!(html.contains("colleague@acme.example"), "{html}");
        // Changing it again asks for the current one.
        let html = app.page(&session, "/account/password").await.1;
        let csrf = csrf_field(&html);
        let (status, _, _) = app
            .post_form(
                &session,
                "/account/password",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("current", "wrong"),
                    ("password", "yet another secret"),
                    ("repeat", "yet another secret"),
                ],
            )
            .await;
        assert_eq!(status, 422);

        // The admin signs the colleague out everywhere, then removes it.
        let html = app.page(&admin, "/people").await.1;
        let row = between(&html, "data-email=\"colleague@acme.example\"", "</tr>");
        assert!(row.contains("1 session"), "{row}");
        let id = between(row, "action=\"/people/", "/sessions\"").to_owned();
        let csrf = csrf_field(&html);
        let (status, location, _) = app
            .post_form(
                &admin,
                &format!("/people/{id}/sessions"),
                &[("csrf_token", csrf.as_str())],
            )
            .await;
        assert_eq!((status, location.as_str()), (303, "/people"));
        let (status, _) = app.page(&session, "/fleet").await;
        assert_eq!(status, 303, "the colleague's session ended");
        let (status, location, _) = app
            .post_form(
                &admin,
                &format!("/people/{id}/delete"),
                &[("csrf_token", csrf.as_str())],
            )
            .await;
        assert_eq!((status, location.as_str()), (303, "/people"));
        assert!(!app.page(&admin, "/people").await.1.contains("colleague@acme.example"));
        // Another customer's admin cannot touch acme's people.
        let globex = sign_in(&app, &f.globex.admin).await;
        let csrf = csrf_field(&app.page(&globex, "/people").await.1);
        let (status, _, _) = app
            .post_form(
                &globex,
                &format!("/people/{}/delete", f.acme.admin.user_id),
                &[("csrf_token", csrf.as_str())],
            )
            .await;
        assert_eq!(status, 404);

        // A one-time password left unused for longer than a week no longer signs in.
        let password = invite(&app, &admin, "late@acme.example", "customer-admin").await;
        app.db(|conn| {
            use diesel::prelude::*;
            use patchwarden::db::schema::users;
            let eight_days_ago = patchwarden::db::models::now() - chrono::TimeDelta::days(8);
            Ok(
                diesel::update(users::table.filter(users::email.eq("late@acme.example")))
                    .set(users::created_at.eq(eight_days_ago))
                    .execute(conn)?,
            )
        })
        .await;
        let page = app.client.get(app.url("/login")).send().await.unwrap();
        let cookie = page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = csrf_field(&page.text().await.unwrap());
        let response = app
            .client
            .post(app.url("/login"))
            .header("cookie", cookie)
            .form(&[
                ("email", "late@acme.example"),
                ("password", password.as_str()),
                ("csrf_token", &csrf),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "[{}]", app.backend.name());
        let html = response.text().await.unwrap();
        assert!(html.contains("this one-time password has expired"), "{html}");

        // The vendor admin invites a publisher, who may not manage people.
        let vendor = sign_in(&app, &f.vendor).await;
        let password = invite(&app, &vendor, "writer@vendor.example", "vendor-publisher").await;
        let html = app.page(&vendor, "/people").await.1;
        assert!(between(&html, "data-email=\"writer@vendor.example\"", "</tr>").contains("vendor-publisher"));
        assert!(
            !html.contains("admin@acme.example"),
            "customers' admins are on their customer's screen"
        );
        let publisher = Actor {
            email: "writer@vendor.example".into(),
            password,
            token: String::new(),
            user_id: String::new(),
        };
        let session = sign_in(&app, &publisher).await;
        let csrf = csrf_field(&app.page(&session, "/account/password").await.1);
        app.post_form(
            &session,
            "/account/password",
            &[
                ("csrf_token", csrf.as_str()),
                ("password", "a publisher's secret"),
                ("repeat", "a publisher's secret"),
            ],
        )
        .await;
        let (status, _) = app.page(&session, "/people").await;
        assert_eq!(status, 403);
    }
}

#[actix_web::test]
async fn the_log_page_names_devices_and_users_and_links_proofs_that_verify() {
    for app in TestApp::each().await {
        let (f, devices) = fleet(&app).await;
        patchwarden::services::log::sign_now(&app.state).await.unwrap();
        let session = sign_in(&app, &f.vendor).await;
        let (status, html) = app.page(&session, "/vendor/log").await;
        assert_eq!(status, 200, "[{}] {html}", app.backend.name());
        let id = devices[0]["id"].as_str().unwrap();
        assert!(
            html.contains(&format!("<a href=\"/fleet/devices/{id}\">device fw-a</a>")),
            "{html}"
        );
        assert!(html.contains(">admin@vendor.example</a>"), "users are named");
        assert!(html.contains("<details><summary>"), "entries fold");
        let proofs: Vec<&str> = html
            .match_indices("class=\"proof\" href=\"")
            .map(|(at, m)| between(&html[at..], m, "\""))
            .collect();
        assert!(proofs.len() >= 5, "{html}");
        for proof in proofs {
            let (status, body) = app.get(&proof.replace("&amp;", "&"), "").await;
            assert_eq!(status, 200, "{proof}: {body}");
            assert!(
                body["hashes"].is_array() || body["proof"].is_array() || body.is_object(),
                "{body}"
            );
        }
    }
}

/// Whether every moment in `html`'s text reads `YYYY-MM-DD HH:MM:SS UTC (…)`; the
/// moments that do not, with where they are. Code blocks (entries, signed documents)
/// and attributes are data, not what a person reads, and are skipped.
fn odd_moments(html: &str) -> Vec<String> {
    let mut text = String::new();
    let mut rest = html;
    // Drop code and pre blocks and charts (their axes name the ends of a span, not
    // a moment), then tags with their attributes.
    let blocks = [("<code", "</code>"), ("<pre", "</pre>"), ("<svg", "</svg>")];
    while let Some(start) = blocks.iter().filter_map(|(open, _)| rest.find(open)).min() {
        text.push_str(&rest[..start]);
        let close = blocks
            .iter()
            .find(|(open, _)| rest[start..].starts_with(open))
            .unwrap()
            .1;
        rest = rest[start..]
            .find(close)
            .map_or("", |end| &rest[start + end + close.len()..]);
    }
    text.push_str(rest);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let bytes = plain.as_bytes();
    let mut odd = Vec::new();
    let digit = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = 0;
    while i + 16 <= bytes.len() {
        let looks = (0..4).all(|k| digit(i + k))
            && bytes[i + 4] == b'-'
            && digit(i + 5)
            && bytes[i + 7] == b'-'
            && digit(i + 8)
            && (bytes[i + 10] == b' ' || bytes[i + 10] == b'T')
            && digit(i + 11)
            && bytes[i + 13] == b':';
        if looks {
            let end = (i + 25).min(plain.len());
            let found = plain.get(i..end).unwrap_or("");
            let good = found.len() == 25
                && bytes[i + 10] == b' '
                && bytes[i + 16] == b':'
                && found.get(19..).is_some_and(|s| s == " UTC (");
            if !good {
                odd.push(
                    plain
                        .get(i.saturating_sub(20)..(i + 40).min(plain.len()))
                        .unwrap_or("")
                        .to_owned(),
                );
            }
            i += 16;
        } else {
            i += 1;
        }
    }
    odd
}

#[test]
fn the_moment_check_catches_the_old_forms() {
    assert!(odd_moments("<td>2026-12-06 14:16:40 UTC (3 h ago)</td>").is_empty());
    assert!(odd_moments("<code>\"at\":\"2026-12-06T14:16:40.029506Z\"</code>").is_empty());
    assert_eq!(odd_moments("<td>2026-12-06T14:16:40.029506Z</td>").len(), 1);
    assert_eq!(odd_moments("<td>2026-12-06 14:17:09</td>").len(), 1);
    assert_eq!(odd_moments("<td>2026-12-06 14:17 UTC</td>").len(), 1);
}

#[actix_web::test]
async fn every_screen_shows_a_moment_one_way() {
    for app in TestApp::each().await {
        let (f, devices) = fleet(&app).await;
        let patch = support::patching::publish_patch(&app, &f, "6.3.0r21", support::patching::file_bytes(64)).await;
        let token = devices[0]["token"].as_str().unwrap();
        let report = json!({"patch_id": patch, "state": "downloading"});
        let (status, body) = app.post("/api/v1/device/report", token, report).await;
        assert!((200..300).contains(&status), "{status} {body}");
        poll(&app, token, json!({"version": "6.3.0r20"})).await;
        patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .unwrap();
        patchwarden::services::log::sign_now(&app.state).await.unwrap();
        let wave = json!({"percent": 100, "success_threshold": 90, "error_threshold": 10,
                          "min_reports": 5, "install_timeout": "1h"});
        let (status, rollout) = app
            .post(
                &format!("/api/v1/patches/{patch}/rollouts"),
                &f.vendor.token,
                json!({"waves": [wave]}),
            )
            .await;
        assert_eq!(status, 201, "{rollout}");
        let rollout = rollout["id"].as_str().unwrap().to_owned();
        let (status, _) = app
            .post(
                "/api/v1/tokens",
                &f.acme.admin.token,
                json!({"label": "ci", "expires_in": "30d"}),
            )
            .await;
        assert_eq!(status, 201);
        let sessions = [sign_in(&app, &f.vendor).await, sign_in(&app, &f.acme.admin).await];
        let device = devices[0]["id"].as_str().unwrap().to_owned();
        let fill = |path: &str| -> Option<String> {
            let filled = path.replace("{id}", "ID").replace("{key}", &f.advisory);
            let filled = if path.starts_with("/fleet/devices/") {
                filled.replace("ID", &device)
            } else if path.starts_with("/vendor/patches/") {
                filled.replace("ID", &patch)
            } else if path.starts_with("/vendor/rollouts/") {
                filled.replace("ID", &rollout)
            } else if path.starts_with("/advisories/") {
                filled.replace("ID", &f.advisory)
            } else {
                filled.replace("{slug}", "acme")
            };
            (!filled.contains('{') && !filled.contains("ID")).then_some(filled)
        };
        let mut checked = 0;
        for route in patchwarden::routes::table().list() {
            let pages = route.method == "get"
                && !route.path.starts_with("/api/")
                && !route.path.starts_with("/feeds/")
                && !route.path.starts_with("/.well-known/")
                && !route.path.starts_with("/static/")
                && !["/healthz", "/readyz", "/metrics", "/login"].contains(&route.path.as_str());
            if !pages {
                continue;
            }
            let path = fill(&route.path).unwrap_or_else(|| panic!("{}: the walk cannot fill it; teach it", route.path));
            for session in &sessions {
                let (status, html) = app.page(session, &path).await;
                if status != 200 {
                    assert!(
                        [403, 404].contains(&status),
                        "[{}] {path}: {status} {html}",
                        app.backend.name()
                    );
                    continue;
                }
                let odd = odd_moments(&html);
                assert!(
                    odd.is_empty(),
                    "[{}] {path} shows moments another way: {odd:?}",
                    app.backend.name()
                );
                checked += 1;
            }
        }
        assert!(checked >= 25, "only {checked} pages were checked");
    }
}
