//! Signed advisories end to end: the ScreenOS emergency advisory is drafted,
//! published, revised and withdrawn; every revision verifies with the stock minisign
//! tool; the query endpoint answers inside, at the edges of and outside each range;
//! every CSAF document passes the CSAF 2.0 validator; bad input is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use chrono::Datelike;
use serde_json::{json, Value};
use support::{assert_csaf_valid, error_code, minisign_verifies, Actor, TestApp};

/// The advisory of API.md: two affected trains, fixed in 6.2.0r19 and 6.3.0r21.
fn screenos_advisory() -> Value {
    json!({
        "title": "Unauthorized code in ScreenOS allows administrative access and VPN decryption",
        "summary": "An internal code review found unauthorized code that allows a remote attacker to gain administrative access and to decrypt VPN traffic.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        "cvss_v4": "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
        "cves": ["CVE-2015-7755", "CVE-2015-7756"],
        "cwes": ["CWE-798", "CWE-506"],
        "emergency": true,
        "known_exploited": false,
        "fix_deadline": "2026-12-05T00:00:00Z",
        "affected": [
            {"product": "screenos",
             "ranges": [{"introduced": "6.2.0r15", "fixed": "6.2.0r19"},
                        {"introduced": "6.3.0r12", "fixed": "6.3.0r21"}],
             "versions": []}
        ],
        "workarounds": "Restrict management access to trusted networks.",
        "references": ["https://kb.example.com/JSA10713"],
        "acknowledgements": "Found during an internal code review."
    })
}

async fn create_product(app: &TestApp, actor: &Actor, slug: &str, scheme: &str) {
    let (status, body) = app
        .post(
            "/api/v1/products",
            &actor.token,
            json!({"slug": slug, "name": slug.to_uppercase(), "version_scheme": scheme}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Drafts and publishes `body`; returns the public id.
async fn publish(app: &TestApp, actor: &Actor, body: Value) -> String {
    let (status, draft) = app.post("/api/v1/advisories", &actor.token, body).await;
    assert_eq!(status, 201, "{draft}");
    assert_eq!(draft["status"], "draft");
    let key = draft["id"].as_str().unwrap();
    let (status, published) = app
        .post(
            &format!("/api/v1/advisories/{key}/publish"),
            &actor.token,
            json!({"change_summary": "Initial publication"}),
        )
        .await;
    assert_eq!(status, 201, "{published}");
    published["id"].as_str().unwrap().to_owned()
}

async fn bytes(app: &TestApp, path: &str) -> Vec<u8> {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.bytes().await.unwrap().to_vec()
}

async fn public_key(app: &TestApp, key_id: &str) -> String {
    String::from_utf8(bytes(app, &format!("/api/v1/keys/{key_id}")).await).unwrap()
}

async fn query(app: &TestApp, version: &str) -> Value {
    let response = app
        .client
        .post(app.url("/api/v1/query"))
        .json(&json!({"product": "screenos", "version": version}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "query {version}");
    response.json().await.unwrap()
}

/// The fix the query names for `version`, `None` when not affected.
async fn fix_for(app: &TestApp, version: &str) -> Option<Option<String>> {
    let answer = query(app, version).await;
    let list = answer["advisories"].as_array().unwrap();
    assert_eq!(answer["affected"], !list.is_empty());
    list.first().map(|a| a["fixed_version"].as_str().map(str::to_owned))
}

#[actix_web::test]
async fn the_screenos_emergency_advisory_is_published_revised_and_verifiable() {
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        create_product(&app, &vendor, "screenos", "vendor").await;
        let id = publish(&app, &vendor, screenos_advisory()).await;
        let year = chrono::Utc::now().year();
        assert_eq!(id, format!("PW-{year}-0001"));

        // Revision 1: served exactly as signed, verified by the stock tool.
        let first = bytes(&app, &format!("/api/v1/advisories/{id}")).await;
        let first_sig =
            String::from_utf8(bytes(&app, &format!("/api/v1/advisories/{id}/revisions/1/minisig")).await).unwrap();
        let document: Value = serde_json::from_slice(&first).unwrap();
        assert_eq!(document["id"], id.as_str());
        assert_eq!(document["revision"], 1);
        assert_eq!(document["severity"], "critical");
        assert_eq!(document["cvss_v3"]["score"], 9.8);
        let key_id = document["signing_key_id"].as_str().unwrap().to_owned();
        let key = public_key(&app, &key_id).await;
        {
            let (ok, output) = minisign_verifies(&first, &first_sig, &key);
            assert!(ok, "minisign refused revision 1: {output}");
            assert!(
                output.contains(&format!("patchwarden advisory {id} revision 1 published")),
                "{output}"
            );
            let mut flipped = first.clone();
            flipped[10] ^= 0x01;
            let (ok, _) = minisign_verifies(&flipped, &first_sig, &key);
            assert!(!ok, "a flipped byte still verified");
        }

        // Four days later the 6.3.0 range was narrowed: revision 2.
        let mut revised = screenos_advisory();
        revised["affected"][0]["ranges"][1]["introduced"] = json!("6.3.0r17");
        revised["change_summary"] = json!("Narrowed the affected 6.3.0 releases to 6.3.0r17 and later.");
        let (status, body) = app
            .post(&format!("/api/v1/advisories/{id}/revisions"), &vendor.token, revised)
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["revision"], 2);

        let latest = bytes(&app, &format!("/api/v1/advisories/{id}")).await;
        let second = bytes(&app, &format!("/api/v1/advisories/{id}/revisions/2")).await;
        assert_eq!(latest, second);
        assert_eq!(
            bytes(&app, &format!("/api/v1/advisories/{id}/revisions/1")).await,
            first,
            "revision 1 changed"
        );
        let second_sig =
            String::from_utf8(bytes(&app, &format!("/api/v1/advisories/{id}/revisions/2/minisig")).await).unwrap();
        {
            let (ok, output) = minisign_verifies(&second, &second_sig, &key);
            assert!(ok, "minisign refused revision 2: {output}");
            let (ok, _) = minisign_verifies(&second, &first_sig, &key);
            assert!(!ok, "revision 1's signature verified revision 2");
        }
        let doc2: Value = serde_json::from_slice(&second).unwrap();
        assert_eq!(doc2["revisions"].as_array().unwrap().len(), 2);
        assert_eq!(doc2["published"], document["published"]);
        let (_, revisions) = app
            .get(&format!("/api/v1/advisories/{id}/revisions"), &vendor.token)
            .await;
        assert_eq!(revisions.as_array().unwrap().len(), 2);

        // Who is affected, after the narrowing.
        assert_eq!(fix_for(&app, "6.2.0r14").await, None, "below the 6.2.0 range");
        assert_eq!(
            fix_for(&app, "6.2.0r15").await,
            Some(Some("6.2.0r19".into())),
            "first affected 6.2.0"
        );
        assert_eq!(fix_for(&app, "6.2.0r18").await, Some(Some("6.2.0r19".into())));
        assert_eq!(fix_for(&app, "6.2.0r19").await, None, "the 6.2.0 fix");
        assert_eq!(
            fix_for(&app, "6.3.0r12").await,
            None,
            "no longer affected after the revision"
        );
        assert_eq!(fix_for(&app, "6.3.0r16").await, None);
        assert_eq!(
            fix_for(&app, "6.3.0r17").await,
            Some(Some("6.3.0r21".into())),
            "first affected 6.3.0"
        );
        assert_eq!(
            fix_for(&app, "6.3.0r20").await,
            Some(Some("6.3.0r21".into())),
            "last affected 6.3.0"
        );
        assert_eq!(fix_for(&app, "6.3.0r21").await, None, "the 6.3.0 fix");
        assert_eq!(fix_for(&app, "6.1.0r7").await, None, "an older train");
        assert_eq!(fix_for(&app, "6.4.0r1").await, None, "a newer train");
        let answer = query(&app, "6.3.0r20").await;
        assert_eq!(answer["advisories"][0]["id"], id.as_str());
        assert_eq!(answer["advisories"][0]["other_fixed_versions"], json!(["6.2.0r19"]));
        assert_eq!(answer["advisories"][0]["emergency"], true);

        // CSAF: the document of the latest revision and the distribution around it.
        let (status, metadata) = app.get_text("/.well-known/csaf/provider-metadata.json").await;
        assert_eq!(status, 200);
        let metadata: Value = serde_json::from_str(&metadata).unwrap();
        assert_eq!(metadata["role"], "csaf_trusted_provider");
        let (_, index) = app.get_text("/.well-known/csaf/white/index.txt").await;
        let path = format!("{year}/pw-{year}-0001.json");
        assert_eq!(index.trim(), path);
        let (_, changes) = app.get_text("/.well-known/csaf/white/changes.csv").await;
        assert!(changes.starts_with(&format!("\"{path}\",\"")), "{changes}");
        let csaf_bytes = bytes(&app, &format!("/.well-known/csaf/white/{path}")).await;
        let csaf: Value = serde_json::from_slice(&csaf_bytes).unwrap();
        assert_eq!(csaf["document"]["tracking"]["version"], "2");
        let (_, sha256) = app.get_text(&format!("/.well-known/csaf/white/{path}.sha256")).await;
        assert_eq!(
            sha256,
            format!(
                "{}  pw-{year}-0001.json\n",
                patchwarden::secrets::sha256_hex(&csaf_bytes)
            )
        );
        let (status, sha512) = app.get_text(&format!("/.well-known/csaf/white/{path}.sha512")).await;
        assert_eq!(status, 200);
        assert_eq!(sha512.split_whitespace().next().unwrap().len(), 128);

        // Withdrawal is one more signed revision; twice is a conflict.
        let (status, body) = app
            .post(
                &format!("/api/v1/advisories/{id}/withdraw"),
                &vendor.token,
                json!({"reason": "Duplicate of PW-2015-0001"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["revision"], 3);
        let (status, body) = app
            .post(
                &format!("/api/v1/advisories/{id}/withdraw"),
                &vendor.token,
                json!({"reason": "again"}),
            )
            .await;
        assert_eq!((status, error_code(&body)), (409, "conflict"));
        let withdrawn = bytes(&app, &format!("/api/v1/advisories/{id}")).await;
        let withdrawn: Value = serde_json::from_slice(&withdrawn).unwrap();
        assert_eq!(withdrawn["status"], "withdrawn");
        assert_eq!(withdrawn["withdrawn_reason"], "Duplicate of PW-2015-0001");
        assert_eq!(
            fix_for(&app, "6.3.0r20").await,
            None,
            "a withdrawn advisory affects nothing"
        );
        let csaf_withdrawn: Value =
            serde_json::from_slice(&bytes(&app, &format!("/.well-known/csaf/white/{path}")).await).unwrap();

        assert_csaf_valid(&[csaf, csaf_withdrawn]);
    }
}

#[actix_web::test]
async fn bad_advisory_input_is_refused_and_nothing_is_written() {
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        create_product(&app, &vendor, "screenos", "vendor").await;
        let with = |pointer: &str, value: Value| {
            let mut body = screenos_advisory();
            *body.pointer_mut(pointer).unwrap() = value;
            body
        };
        let cases = [
            (
                with("/cvss_v3", json!("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:Q")),
                "cvss_v3",
                "A",
            ),
            (
                with("/cvss_v3", json!("CVSS:3.1/AV:N/AC:L")),
                "cvss_v3",
                "mandatory base metric PR",
            ),
            (with("/cvss_v4", json!("CVSS:4.0/AV:N")), "cvss_v4", "missing"),
            (
                with("/affected/0/product", json!("junos")),
                "affected[0].product",
                "junos",
            ),
            (
                with(
                    "/affected/0/ranges/1",
                    json!({"introduced": "6.3.0r21", "fixed": "6.3.0r12"}),
                ),
                "affected[0].ranges[1].fixed",
                "inverted",
            ),
            (
                with(
                    "/affected/0/ranges/1",
                    json!({"introduced": "6.2.0r18", "fixed": "6.2.0r20"}),
                ),
                "affected[0].ranges[1]",
                "overlaps",
            ),
            (
                with("/affected/0/ranges/1/fixed", json!("6.3.0r21!")),
                "affected[0].ranges[1].fixed",
                "6.3.0r21!",
            ),
            (with("/cves/0", json!("CVE-15-7755")), "cves[0]", "CVE-15-7755"),
            (with("/fix_deadline", json!("soon")), "fix_deadline", "soon"),
        ];
        for (body, field, words) in cases {
            let (status, json) = app.post("/api/v1/advisories", &vendor.token, body).await;
            assert_eq!(status, 422, "{field}: {json}");
            assert_eq!(json["error"]["field"], field, "{json}");
            let message = json["error"]["message"].as_str().unwrap();
            assert!(message.contains(words), "{field}: `{message}` should mention `{words}`");
        }
        let (status, json) = app
            .post(
                "/api/v1/advisories",
                &vendor.token,
                json!({"title": "x", "severity": "high"}),
            )
            .await;
        assert_eq!(status, 422, "{json}");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `severity`"));

        // A draft that lacks what publication needs.
        let (_, draft) = app
            .post("/api/v1/advisories", &vendor.token, json!({"title": "Incomplete"}))
            .await;
        let key = draft["id"].as_str().unwrap().to_owned();
        let (status, json) = app
            .post(&format!("/api/v1/advisories/{key}/publish"), &vendor.token, json!({}))
            .await;
        assert_eq!(status, 422, "{json}");
        assert_eq!(json["error"]["field"], "summary");
        let (status, json) = app
            .post(
                &format!("/api/v1/advisories/{key}/revisions"),
                &vendor.token,
                json!({"title": "x", "change_summary": "y"}),
            )
            .await;
        assert_eq!((status, error_code(&json)), (409, "conflict"), "revising a draft");
        let (status, json) = app
            .post(
                &format!("/api/v1/advisories/{key}/withdraw"),
                &vendor.token,
                json!({"reason": "x"}),
            )
            .await;
        assert_eq!((status, error_code(&json)), (409, "conflict"), "withdrawing a draft");
        let (status, json) = app
            .patch(
                &format!("/api/v1/advisories/{key}"),
                &vendor.token,
                json!({"cvss_v3": "CVSS:3.1/XX:N"}),
            )
            .await;
        assert_eq!(status, 422, "{json}");
        let (_, stored) = app.get(&format!("/api/v1/advisories/{key}/draft"), &vendor.token).await;
        assert_eq!(
            stored["draft"],
            json!({"title": "Incomplete"}),
            "a refused patch changed the draft"
        );

        // A published advisory cannot be edited in place, and revisions need a summary.
        let id = publish(&app, &vendor, screenos_advisory()).await;
        let (status, json) = app
            .patch(
                &format!("/api/v1/advisories/{id}"),
                &vendor.token,
                json!({"title": "Edited"}),
            )
            .await;
        assert_eq!((status, error_code(&json)), (409, "conflict"));
        let (status, json) = app
            .post(
                &format!("/api/v1/advisories/{id}/revisions"),
                &vendor.token,
                screenos_advisory(),
            )
            .await;
        assert_eq!((status, json["error"]["field"].as_str()), (422, Some("change_summary")));
        let (status, json) = app
            .post(&format!("/api/v1/advisories/{id}/publish"), &vendor.token, json!({}))
            .await;
        assert_eq!((status, error_code(&json)), (409, "conflict"), "publishing twice");

        // Only the one advisory was published, with one revision.
        let (_, list) = app.get("/api/v1/advisories", &vendor.token).await;
        assert_eq!(list["total"], 1);
        let (_, revisions) = app
            .get(&format!("/api/v1/advisories/{id}/revisions"), &vendor.token)
            .await;
        assert_eq!(revisions.as_array().unwrap().len(), 1);

        // Customers cannot write advisories; drafts are invisible to the public.
        let acme = app.with_customer("acme").await;
        let (status, _) = app
            .post("/api/v1/advisories", &acme.admin.token, screenos_advisory())
            .await;
        assert_eq!(status, 403);
        let (status, _) = app.get_text(&format!("/api/v1/advisories/{key}")).await;
        assert_eq!(status, 404, "a draft leaked");

        let response = app
            .client
            .post(app.url("/api/v1/query"))
            .json(&json!({"product": "junos", "version": "1"}))
            .send()
            .await
            .unwrap();
        let (status, body) = support::status_and_json(response).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("product")));
        let response = app
            .client
            .post(app.url("/api/v1/query"))
            .json(&json!({"product": "screenos", "version": "6.3.0 r20"}))
            .send()
            .await
            .unwrap();
        let (status, body) = support::status_and_json(response).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("version")));
    }
}

#[actix_web::test]
async fn advisory_ids_have_no_gaps_or_duplicates_under_concurrent_publishing() {
    for app in TestApp::each_with(&[("workers", "2"), ("database_pool_size", "8")]).await {
        let vendor = app.with_vendor_admin().await;
        create_product(&app, &vendor, "screenos", "vendor").await;
        let mut keys = Vec::new();
        for _ in 0..8 {
            let (_, draft) = app.post("/api/v1/advisories", &vendor.token, screenos_advisory()).await;
            keys.push(draft["id"].as_str().unwrap().to_owned());
        }
        // A failed publication must not consume a number.
        let (_, broken) = app
            .post("/api/v1/advisories", &vendor.token, json!({"title": "no body"}))
            .await;
        let broken_key = broken["id"].as_str().unwrap().to_owned();
        let publications = keys.iter().chain(std::iter::once(&broken_key)).map(|key| {
            app.client
                .post(app.url(&format!("/api/v1/advisories/{key}/publish")))
                .bearer_auth(&vendor.token)
                .json(&json!({}))
                .send()
        });
        let responses = futures_util::future::join_all(publications).await;
        let mut ids = Vec::new();
        for response in responses {
            let (status, body) = support::status_and_json(response.unwrap()).await;
            if status == 201 {
                ids.push(body["id"].as_str().unwrap().to_owned());
            } else {
                assert_eq!(status, 422, "{body}");
            }
        }
        ids.sort();
        let year = chrono::Utc::now().year();
        let expected: Vec<String> = (1..=8).map(|n| format!("PW-{year}-{n:04}")).collect();
        assert_eq!(ids, expected);
        let (_, again) = app.post("/api/v1/advisories", &vendor.token, screenos_advisory()).await;
        let next = app
            .post(
                &format!("/api/v1/advisories/{}/publish", again["id"].as_str().unwrap()),
                &vendor.token,
                json!({}),
            )
            .await;
        assert_eq!(next.1["id"], format!("PW-{year}-0009"));
    }
}

#[actix_web::test]
async fn the_list_filters_and_pages() {
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        create_product(&app, &vendor, "screenos", "vendor").await;
        create_product(&app, &vendor, "junos", "vendor").await;
        let backdoor = publish(&app, &vendor, screenos_advisory()).await;
        let mut junos = screenos_advisory();
        junos["title"] = json!("Junos J-Web cross-site scripting");
        junos["cvss_v3"] = json!("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N");
        junos["cvss_v4"] = Value::Null;
        junos["cves"] = json!(["CVE-2024-1111"]);
        junos["emergency"] = json!(false);
        junos["affected"] = json!([{"product": "junos", "ranges": [{"introduced": "21.4R1", "fixed": "21.4R3-S5"}]}]);
        let xss = publish(&app, &vendor, junos).await;

        let ids = |list: &Value| -> Vec<String> {
            list["advisories"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let get = |q: &'static str| {
            let app = &app;
            async move {
                let (status, body) = app.get_text(&format!("/api/v1/advisories{q}")).await;
                assert_eq!(status, 200, "{q}: {body}");
                serde_json::from_str::<Value>(&body).unwrap()
            }
        };
        assert_eq!(ids(&get("").await), [xss.as_str(), backdoor.as_str()], "newest first");
        assert_eq!(ids(&get("?product=junos").await), [xss.as_str()]);
        assert_eq!(ids(&get("?severity=critical").await), [backdoor.as_str()]);
        assert_eq!(ids(&get("?severity=medium").await), [xss.as_str()]);
        assert_eq!(ids(&get("?cve=cve-2015-7756").await), [backdoor.as_str()]);
        assert_eq!(ids(&get("?emergency=true").await), [backdoor.as_str()]);
        assert_eq!(ids(&get("?q=J-WEB").await), [xss.as_str()]);
        assert_eq!(
            ids(&get("?q=100%25").await),
            Vec::<String>::new(),
            "LIKE wildcards are literal"
        );
        let page = get("?per_page=1&page=2").await;
        assert_eq!(ids(&page), [backdoor.as_str()]);
        assert_eq!((page["total"].clone(), page["page"].clone()), (json!(2), json!(2)));
        for bad in ["?severity=urgent", "?cve=CVE-1", "?page=0", "?per_page=1000"] {
            let (status, _) = app.get_text(&format!("/api/v1/advisories{bad}")).await;
            assert_eq!(status, 422, "{bad}");
        }
        let (status, _) = app.get_text("/api/v1/advisories?emergency=maybe").await;
        assert_eq!(status, 400);
    }
}

#[actix_web::test]
async fn the_atom_feed_parses_and_pages_escape_hostile_text() {
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        create_product(&app, &vendor, "screenos", "vendor").await;
        let hostile = "<script>alert('x')</script> & \"quotes\"";
        let mut body = screenos_advisory();
        body["title"] = json!(hostile);
        body["summary"] = json!(format!("Summary {hostile}"));
        body["workarounds"] = json!("<img src=x onerror=alert(1)>");
        let id = publish(&app, &vendor, body).await;

        let (status, feed) = app.get_text("/feeds/advisories.atom").await;
        assert_eq!(status, 200);
        let parsed = atom_syndication::Feed::read_from(feed.as_bytes()).expect("valid Atom");
        assert_eq!(parsed.entries().len(), 1);
        let entry = &parsed.entries()[0];
        assert!(entry.title().as_str().contains(hostile), "{:?}", entry.title());
        assert!(entry.title().as_str().starts_with("[EMERGENCY]"));
        let first_update = entry.updated().to_owned();

        let mut revised = screenos_advisory();
        revised["title"] = json!("Renamed");
        revised["change_summary"] = json!("Clearer title");
        app.post(&format!("/api/v1/advisories/{id}/revisions"), &vendor.token, revised)
            .await;
        let (_, feed) = app.get_text("/feeds/advisories.atom").await;
        let parsed = atom_syndication::Feed::read_from(feed.as_bytes()).expect("valid Atom");
        assert_eq!(parsed.entries().len(), 1, "a revision updates its entry");
        assert!(parsed.entries()[0].title().as_str().contains("Renamed"));
        assert!(parsed.entries()[0].updated() >= &first_update);

        for path in ["/advisories".to_owned(), format!("/advisories/{id}?revision=1")] {
            let (status, html) = app.get_text(&path).await;
            assert_eq!(status, 200, "{path}");
            assert!(!html.contains("<script>alert"), "{path}: unescaped script");
            assert!(!html.contains("<img src=x"), "{path}: unescaped markup");
        }
        let (_, page) = app.get_text(&format!("/advisories/{id}?revision=1")).await;
        assert!(
            page.contains("&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2F;script&gt; &amp; &quot;quotes&quot;"),
            "{page}"
        );
        assert!(page.contains("minisign -Vm"), "verification steps missing");
        assert!(page.contains("EMERGENCY"));
        let (status, _) = app.get_text(&format!("/advisories/{id}?revision=9")).await;
        assert_eq!(status, 404);
    }
}

#[actix_web::test]
async fn a_rotated_key_is_introduced_by_the_old_one_and_old_signatures_still_verify() {
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        create_product(&app, &vendor, "screenos", "vendor").await;
        let id = publish(&app, &vendor, screenos_advisory()).await;
        let old_key = app.state.signer.key_id().to_owned();

        patchwarden::signing::rotate(&app.config.keys_dir, None, None, "2026-11-28T00:00:00Z", None).unwrap();
        let app = app.restart().await;
        let new_key = app.state.signer.key_id().to_owned();
        assert_ne!(new_key, old_key);

        let (_, keys) = app.get("/api/v1/keys", &vendor.token).await;
        let keys = keys.as_array().unwrap();
        let old = keys.iter().find(|k| k["key_id"] == old_key.as_str()).unwrap();
        let new = keys.iter().find(|k| k["key_id"] == new_key.as_str()).unwrap();
        assert!(old["retired_at"].is_string());
        assert!(new["retired_at"].is_null());
        assert_eq!(new["introduced_by"], old_key.as_str());
        let statement = new["rotation_statement"].as_str().unwrap();
        let signature = new["rotation_signature"].as_str().unwrap();
        let old_public = old["public_key"].as_str().unwrap();
        let verified =
            patchwarden::signing::verify(old_public, std::io::Cursor::new(statement.as_bytes()), signature).unwrap();
        assert!(verified.trusted_comment.contains(&new_key));
        assert!(statement.contains(new["public_key"].as_str().unwrap()));

        // The old revision still verifies with the old key; a new one uses the new key.
        let first = bytes(&app, &format!("/api/v1/advisories/{id}/revisions/1")).await;
        let first_sig =
            String::from_utf8(bytes(&app, &format!("/api/v1/advisories/{id}/revisions/1/minisig")).await).unwrap();
        assert!(patchwarden::signing::verify(old_public, std::io::Cursor::new(&first), &first_sig).is_ok());
        let mut revised = screenos_advisory();
        revised["change_summary"] = json!("Re-signed after key rotation");
        app.post(&format!("/api/v1/advisories/{id}/revisions"), &vendor.token, revised)
            .await;
        let second = bytes(&app, &format!("/api/v1/advisories/{id}/revisions/2")).await;
        let second_sig =
            String::from_utf8(bytes(&app, &format!("/api/v1/advisories/{id}/revisions/2/minisig")).await).unwrap();
        let new_public = public_key(&app, &new_key).await;
        {
            let (ok, output) = minisign_verifies(&second, &second_sig, &new_public);
            assert!(ok, "{output}");
        }
        assert!(patchwarden::signing::verify(old_public, std::io::Cursor::new(&second), &second_sig).is_err());
    }
}

#[test]
fn every_catalogued_cwe_name_passes_the_csaf_validator() {
    use patchwarden::domain::advisory::{AdvisoryInput, Completeness, ProductInfo, RevisionMeta, RevisionStatus};
    use patchwarden::domain::{csaf, cwe, version::VersionScheme};
    let product = |slug: &str| {
        (slug == "screenos").then(|| ProductInfo {
            slug: "screenos".into(),
            name: "ScreenOS".into(),
            scheme: VersionScheme::Vendor,
        })
    };
    let at = chrono::Utc::now();
    let documents: Vec<Value> = cwe::ids()
        .map(|id| {
            let mut body = screenos_advisory();
            body["cwes"] = json!([id]);
            let input: AdvisoryInput = serde_json::from_value(body).unwrap();
            let advisory = input.validate(product, Completeness::Publish).unwrap();
            let meta = RevisionMeta {
                id: "PW-2026-0001".into(),
                revision: 1,
                status: RevisionStatus::Published,
                first_published: at,
                published: at,
                change_summary: "Initial publication".into(),
                history: vec![],
                withdrawn_reason: None,
                key_id: "K".into(),
            };
            let publisher = csaf::Publisher {
                name: "Example".into(),
                namespace: "https://example.com".into(),
            };
            csaf::document(
                &advisory,
                &meta,
                &publisher,
                "https://example.com/.well-known/csaf/white/2026/pw-2026-0001.json",
            )
        })
        .collect();
    assert_csaf_valid(&documents);
}
