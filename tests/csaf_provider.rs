//! The CSAF 2.0 trusted provider as a downloader walks it, on every backend: from
//! `security.txt` and `provider-metadata.json` to the ROLIE feed, its service and
//! category documents and the directory; every listed document downloaded without a
//! redirect, both hashes checked, every `.asc` verified with the published OpenPGP
//! keys by GnuPG (and by Sequoia's `sqv` where installed, always in CI), every
//! document valid, `index.txt` and `changes.csv` matching the documents exactly —
//! after a publication, a revision and a withdrawal. A flipped byte fails the hashes
//! and the signature. A customer's VEX names only its versions, passes the VEX
//! profile's tests and follows a fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};
use support::devices::{enrol, poll};
use support::patching::{entitle_globex, file_bytes, fixture, publish_advisory, publish_patch};
use support::{assert_csaf_valid, TestApp};

/// What the walk found: each document's path below the directory, and its bytes.
struct Walked {
    documents: BTreeMap<String, Vec<u8>>,
    keys: Vec<String>,
}

/// A client that follows no redirect: a provider must answer each URL itself.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// GETs `url`: 200, open to every origin; the body.
async fn fetch(app: &TestApp, url: &str) -> Vec<u8> {
    let response = client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "[{}] GET {url}", app.backend.name());
    assert_eq!(
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("*"),
        "GET {url} is not open to other origins"
    );
    response.bytes().await.unwrap().to_vec()
}

async fn fetch_json(app: &TestApp, url: &str) -> Value {
    serde_json::from_slice(&fetch(app, url).await).unwrap_or_else(|e| panic!("{url} is not JSON: {e}"))
}

async fn fetch_text(app: &TestApp, url: &str) -> String {
    String::from_utf8(fetch(app, url).await).unwrap()
}

/// Runs `program` with `args`; whether it succeeded, and what it said.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// Checks an OpenPGP detached signature with GnuPG, and with `sqv` when it is
/// installed (it must be when `PATCHWARDEN_REQUIRE_SQV` is set, as in CI); the two
/// must agree. Returns whether it verified.
fn openpgp_verifies(data: &[u8], signature: &str, keys: &[String]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("document.json");
    let signature_path = dir.path().join("document.json.asc");
    std::fs::write(&data_path, data).unwrap();
    std::fs::write(&signature_path, signature).unwrap();
    let home = dir.path().join("gnupg");
    std::fs::create_dir(&home).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let mut key_paths = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let path = dir.path().join(format!("key-{i}.asc"));
        std::fs::write(&path, key).unwrap();
        let (ok, said) = run(
            "gpg",
            &[
                "--homedir".as_ref(),
                home.as_os_str(),
                "--batch".as_ref(),
                "--import".as_ref(),
                path.as_os_str(),
            ],
        );
        assert!(ok, "GnuPG refused the published key: {said}");
        key_paths.push(path);
    }
    let (gpg_ok, gpg_said) = run(
        "gpg",
        &[
            "--homedir".as_ref(),
            home.as_os_str(),
            "--batch".as_ref(),
            "--verify".as_ref(),
            signature_path.as_os_str(),
            data_path.as_os_str(),
        ],
    );
    assert_eq!(
        gpg_ok,
        gpg_said.contains("Good signature"),
        "GnuPG's status and words disagree: {gpg_said}"
    );
    if Path::new("/usr/bin/sqv").is_file() {
        let mut args: Vec<&std::ffi::OsStr> = Vec::new();
        for path in &key_paths {
            args.push("--keyring".as_ref());
            args.push(path.as_os_str());
        }
        args.push(signature_path.as_os_str());
        args.push(data_path.as_os_str());
        let (sqv_ok, sqv_said) = run("sqv", &args);
        assert_eq!(sqv_ok, gpg_ok, "sqv and GnuPG disagree: {sqv_said} / {gpg_said}");
    } else {
        assert!(
            std::env::var_os("PATCHWARDEN_REQUIRE_SQV").is_none(),
            "PATCHWARDEN_REQUIRE_SQV is set but sqv is not installed"
        );
        eprintln!("notice: sqv is not installed; OpenPGP signatures verified with GnuPG only");
    }
    gpg_ok
}

/// The fingerprint GnuPG computes for an armored key.
fn gpg_fingerprint(key: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.asc");
    std::fs::write(&path, key).unwrap();
    let (ok, said) = run(
        "gpg",
        &[
            "--batch".as_ref(),
            "--with-colons".as_ref(),
            "--show-keys".as_ref(),
            path.as_os_str(),
        ],
    );
    assert!(ok, "GnuPG cannot read the key: {said}");
    said.lines()
        .find_map(|l| l.strip_prefix("fpr:::::::::"))
        .map(|rest| rest.trim_end_matches(':').to_owned())
        .unwrap_or_else(|| panic!("no fingerprint in {said}"))
}

/// `<hex>  <name>\n`, as `sha256sum` writes it; the hex.
fn hash_line(text: &str, name: &str) -> String {
    let (hex, file) = text
        .strip_suffix('\n')
        .and_then(|t| t.split_once("  "))
        .unwrap_or_else(|| panic!("not a hash line: {text:?}"));
    assert_eq!(file, name, "the hash file names another file");
    hex.to_owned()
}

/// Walks the provider as a downloader does and checks everything it finds.
async fn walk(app: &TestApp) -> Walked {
    let base = app.url("");
    let security = fetch_text(app, &app.url("/.well-known/security.txt")).await;
    let metadata_url = security
        .lines()
        .find_map(|l| l.strip_prefix("CSAF: "))
        .unwrap_or_else(|| panic!("security.txt names no CSAF provider: {security}"))
        .to_owned();
    assert!(
        security.contains("\nExpires: ") && security.starts_with("Contact: mailto:"),
        "{security}"
    );

    let metadata = fetch_json(app, &metadata_url).await;
    assert_eq!(metadata["canonical_url"], metadata_url.as_str());
    assert_eq!(metadata["role"], "csaf_trusted_provider");
    assert_eq!(metadata["metadata_version"], "2.0");
    assert_eq!(metadata["publisher"]["category"], "vendor");
    for field in ["list_on_CSAF_aggregators", "mirror_on_CSAF_aggregators"] {
        assert!(metadata[field].is_boolean(), "{field}");
    }
    let mut keys = Vec::new();
    for key in metadata["public_openpgp_keys"].as_array().unwrap() {
        let armored = fetch_text(app, key["url"].as_str().unwrap()).await;
        assert_eq!(
            gpg_fingerprint(&armored),
            key["fingerprint"].as_str().unwrap(),
            "the metadata's fingerprint is not the key's"
        );
        keys.push(armored);
    }
    assert!(!keys.is_empty(), "no OpenPGP key is published");

    let distribution = &metadata["distributions"][0];
    let directory = distribution["directory_url"].as_str().unwrap().to_owned();
    assert!(directory.starts_with(&base) && directory.ends_with('/'), "{directory}");
    let listing = fetch_text(app, &directory).await;
    assert!(listing.contains("href=\"index.txt\"") && listing.contains("href=\"changes.csv\""));
    let index = fetch_text(app, &format!("{directory}index.txt")).await;
    let changes = fetch_text(app, &format!("{directory}changes.csv")).await;
    let indexed: Vec<String> = index.lines().map(str::to_owned).collect();
    let mut sorted = indexed.clone();
    sorted.sort();
    assert_eq!(indexed, sorted, "index.txt is not in path order");

    // The ROLIE feed, its service and category documents.
    let rolie = &distribution["rolie"];
    let feed_url = rolie["feeds"][0]["url"].as_str().unwrap();
    assert_eq!(rolie["feeds"][0]["tlp_label"], "WHITE");
    let service = fetch_json(app, rolie["services"][0].as_str().unwrap()).await;
    assert_eq!(
        service["service"]["workspace"][0]["collection"][0]["href"], feed_url,
        "the service document does not name the feed"
    );
    let category = fetch_json(app, rolie["categories"][0].as_str().unwrap()).await;
    let categories = category["categories"]["category"].as_array().unwrap();
    assert!(categories.contains(&json!({"scheme": "urn:ietf:params:rolie:category:information-type", "term": "csaf"})));
    let feed = fetch_json(app, feed_url).await;
    assert_eq!(feed["feed"]["link"][0], json!({"rel": "self", "href": feed_url}));
    assert_eq!(feed["feed"]["category"][0]["term"], "csaf");
    let entries = feed["feed"]["entry"].as_array().unwrap();

    // Every document the feed lists: downloaded, hashed, signed, and the same set as
    // index.txt and changes.csv.
    let mut documents = BTreeMap::new();
    let mut from_feed = BTreeSet::new();
    let mut dates = BTreeMap::new();
    for entry in entries {
        let links = entry["link"].as_array().unwrap();
        let url = links[0]["href"].as_str().unwrap().to_owned();
        assert_eq!(links[0]["rel"], "self");
        assert_eq!(entry["content"], json!({"type": "application/json", "src": url}));
        assert_eq!(entry["format"]["version"], "2.0");
        let path = url
            .strip_prefix(&directory)
            .unwrap_or_else(|| panic!("{url} outside the directory"))
            .to_owned();
        let bytes = fetch(app, &url).await;
        let document: Value = serde_json::from_slice(&bytes).unwrap();
        let tracking = &document["document"]["tracking"];
        let id = tracking["id"].as_str().unwrap();
        let year = &tracking["initial_release_date"].as_str().unwrap()[..4];
        let name: String = id
            .to_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '+' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        assert_eq!(path, format!("{year}/{name}.json"), "the CSAF file name rule");
        assert_eq!(entry["id"], id);
        assert_eq!(entry["title"], document["document"]["title"]);
        assert_eq!(entry["published"], tracking["initial_release_date"]);
        assert_eq!(entry["updated"], tracking["current_release_date"]);
        let file = format!("{name}.json");
        let hrefs: Vec<&str> = links.iter().map(|l| l["href"].as_str().unwrap()).collect();
        for suffix in [".sha256", ".sha512", ".asc"] {
            assert!(hrefs.contains(&format!("{url}{suffix}").as_str()), "no {suffix} link");
        }
        let sha256 = fetch_text(app, &format!("{url}.sha256")).await;
        assert_eq!(hash_line(&sha256, &file), hex::encode(Sha256::digest(&bytes)));
        let sha512 = fetch_text(app, &format!("{url}.sha512")).await;
        assert_eq!(hash_line(&sha512, &file), hex::encode(Sha512::digest(&bytes)));
        let signature = fetch_text(app, &format!("{url}.asc")).await;
        assert!(
            openpgp_verifies(&bytes, &signature, &keys),
            "[{}] the signature of {path} does not verify",
            app.backend.name()
        );
        let year_listing = fetch_text(app, &format!("{directory}{year}/")).await;
        for listed in [
            file.clone(),
            format!("{file}.asc"),
            format!("{file}.sha256"),
            format!("{file}.sha512"),
        ] {
            assert!(
                year_listing.contains(&format!("href=\"{listed}\"")),
                "{year}/ lists no {listed}"
            );
        }
        assert!(
            listing.contains(&format!("href=\"{year}/\"")),
            "the directory lists no {year}/"
        );
        dates.insert(
            path.clone(),
            tracking["current_release_date"].as_str().unwrap().to_owned(),
        );
        from_feed.insert(path.clone());
        documents.insert(path, bytes);
    }
    assert_eq!(
        indexed.iter().cloned().collect::<BTreeSet<_>>(),
        from_feed,
        "index.txt and the feed differ"
    );
    assert_eq!(indexed.len(), from_feed.len(), "index.txt lists a document twice");

    // changes.csv: every document with its current release date, newest first.
    let mut expected: Vec<(&String, &String)> = dates.iter().collect();
    expected.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let expected: String = expected
        .into_iter()
        .map(|(path, date)| format!("\"{path}\",\"{date}\"\n"))
        .collect();
    assert_eq!(changes, expected, "changes.csv");
    let latest = dates.values().max().cloned().unwrap_or_default();
    if !dates.is_empty() {
        assert_eq!(metadata["last_updated"], latest.as_str());
        assert_eq!(feed["feed"]["updated"], latest.as_str());
    }

    let parsed: Vec<Value> = documents.values().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert_csaf_valid(&parsed);
    Walked { documents, keys }
}

/// Revises the fixture's advisory: its range now starts at `introduced`.
async fn revise(app: &TestApp, f: &support::patching::Fixture, summary: &str, introduced: &str) {
    let revision = json!({
        "title": "Unauthorized code in ScreenOS", "summary": "Backdoor, revised.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "emergency": true,
        "change_summary": summary,
        "affected": [{"product": "screenos", "ranges": [{"introduced": introduced, "fixed": "6.3.0r21"}]}]
    });
    let path = format!("/api/v1/advisories/{}/revisions", f.advisory);
    let (status, body) = app.post(&path, &f.vendor.token, revision).await;
    assert_eq!(status, 201, "[{}] {body}", app.backend.name());
}

fn second_advisory() -> Value {
    json!({
        "title": "Denial of service in the ScreenOS web console",
        "summary": "A crafted request restarts the web console.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L",
        "affected": [{"product": "screenos", "ranges": [{"introduced": "6.2.0r1", "fixed": "6.2.0r9"}]}]
    })
}

#[actix_web::test]
async fn a_downloader_walks_the_provider_after_a_publication_a_revision_and_a_withdrawal() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let first = walk(&app).await;
        assert_eq!(
            first.documents.len(),
            1,
            "[{}] the fixture's advisory",
            app.backend.name()
        );

        // A publication.
        let second = publish_advisory(&app, &f.vendor.token, second_advisory()).await;
        let second_id = second["id"].as_str().unwrap().to_owned();
        let after_publish = walk(&app).await;
        assert_eq!(after_publish.documents.len(), 2);

        // A revision of the first: its document changes, its path stays.
        revise(&app, &f, "Narrowed to 6.3.0r15 and later.", "6.3.0r15").await;
        let after_revision = walk(&app).await;
        let path = after_revision
            .documents
            .keys()
            .find(|p| p.contains(&f.advisory.to_lowercase()))
            .unwrap()
            .clone();
        assert_ne!(after_revision.documents[&path], after_publish.documents[&path]);
        let revised: Value = serde_json::from_slice(&after_revision.documents[&path]).unwrap();
        assert_eq!(revised["document"]["tracking"]["version"], "2");

        // A withdrawal: still listed, with the withdrawal in the document.
        let (status, body) = app
            .post(
                &format!("/api/v1/advisories/{second_id}/withdraw"),
                &f.vendor.token,
                json!({"reason": "Not reproducible on shipped builds."}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let after_withdrawal = walk(&app).await;
        let withdrawn_path = after_withdrawal
            .documents
            .keys()
            .find(|p| p.contains(&second_id.to_lowercase()))
            .unwrap()
            .clone();
        let withdrawn = String::from_utf8(after_withdrawal.documents[&withdrawn_path].clone()).unwrap();
        assert!(withdrawn.contains("Not reproducible on shipped builds."));
        assert_eq!(after_withdrawal.documents.len(), 2);

        // A flipped byte fails both hashes and the signature.
        let url = app.url(&format!("/.well-known/csaf/white/{withdrawn_path}"));
        let mut flipped = after_withdrawal.documents[&withdrawn_path].clone();
        flipped[20] ^= 0x01;
        let file = withdrawn_path.rsplit('/').next().unwrap();
        let sha256 = fetch_text(&app, &format!("{url}.sha256")).await;
        assert_ne!(hash_line(&sha256, file), hex::encode(Sha256::digest(&flipped)));
        let sha512 = fetch_text(&app, &format!("{url}.sha512")).await;
        assert_ne!(hash_line(&sha512, file), hex::encode(Sha512::digest(&flipped)));
        let signature = fetch_text(&app, &format!("{url}.asc")).await;
        assert!(
            !openpgp_verifies(&flipped, &signature, &after_withdrawal.keys),
            "a flipped byte still verified"
        );
        // Another document's signature does not vouch for this one.
        let other = app.url(&format!("/.well-known/csaf/white/{path}.asc"));
        let other_signature = fetch_text(&app, &other).await;
        assert!(!openpgp_verifies(
            &after_withdrawal.documents[&withdrawn_path],
            &other_signature,
            &after_withdrawal.keys
        ));

        // Paths a downloader must not be answered on: other spellings, drafts, strangers.
        for bad in [
            withdrawn_path.to_uppercase(),
            withdrawn_path.replace(".json", ".JSON"),
            format!("1999/{file}"),
            "2026/pw-2026-9999.json".to_owned(),
        ] {
            let response = client()
                .get(app.url(&format!("/.well-known/csaf/white/{bad}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 404, "GET {bad}");
        }
    }
}

#[actix_web::test]
async fn every_revision_signed_before_the_openpgp_key_is_signed_at_the_next_start() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        // As a server of the previous version left it: no OpenPGP signature.
        let cleared = app
            .db(|conn| {
                use diesel::RunQueryDsl;
                Ok(diesel::sql_query("UPDATE advisory_revisions SET csaf_signature = NULL").execute(conn)?)
            })
            .await;
        assert_eq!(cleared, 1);
        let url = app.url(&format!(
            "/.well-known/csaf/white/{}",
            walk_path(&app, &f.advisory).await
        ));
        let response = client().get(format!("{url}.asc")).send().await.unwrap();
        assert_eq!(response.status(), 404, "an unsigned document has no signature to serve");
        let app = app.restart().await;
        let walked = walk(&app).await;
        assert_eq!(walked.documents.len(), 1, "[{}]", app.backend.name());
    }
}

/// The path of `advisory`'s document, from `index.txt`.
async fn walk_path(app: &TestApp, advisory: &str) -> String {
    let index = fetch_text(app, &app.url("/.well-known/csaf/white/index.txt")).await;
    index
        .lines()
        .find(|l| l.contains(&advisory.to_lowercase()))
        .unwrap_or_else(|| panic!("{advisory} is not in {index}"))
        .to_owned()
}

/// The product versions a VEX's tree holds, and those of each status.
fn vex_versions(vex: &Value) -> (BTreeSet<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut names = BTreeMap::new();
    let mut versions = BTreeSet::new();
    for product in vex["product_tree"]["branches"][0]["branches"].as_array().unwrap() {
        for branch in product["branches"].as_array().unwrap() {
            let id = branch["product"]["product_id"].as_str().unwrap().to_owned();
            let version = branch["name"].as_str().unwrap().to_owned();
            versions.insert(version.clone());
            names.insert(id, version);
        }
    }
    let mut status = BTreeMap::new();
    let vulnerabilities = vex["vulnerabilities"].as_array().unwrap();
    for (key, ids) in vulnerabilities[0]["product_status"].as_object().unwrap() {
        let set = ids
            .as_array()
            .unwrap()
            .iter()
            .map(|id| names[id.as_str().unwrap()].clone())
            .collect();
        status.insert(key.clone(), set);
    }
    for v in vulnerabilities {
        assert_eq!(v["product_status"], vulnerabilities[0]["product_status"]);
    }
    (versions, status)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[actix_web::test]
async fn a_customers_vex_names_only_its_versions_passes_the_vex_profile_and_follows_a_fix() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        entitle_globex(&app, &f).await;
        let mut acme_devices = Vec::new();
        for (name, version) in [
            ("fw-a", "6.3.0r20"),
            ("fw-b", "6.3.0r19"),
            ("fw-b2", "6.3.0r19"),
            ("fw-c", "6.3.0r21"),
            ("fw-d", "6.2.0r1"),
        ] {
            acme_devices.push(enrol(&app, &f, name, version).await);
        }
        for (name, version) in [("gx-1", "6.3.0r11"), ("gx-2", "6.3.0r18")] {
            let body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version});
            let (status, device) = app.post("/api/v1/devices", &f.globex.admin.token, body).await;
            assert_eq!(status, 201, "{device}");
        }
        let patch = publish_patch(&app, &f, "6.3.0r21", file_bytes(4096)).await;
        let path = format!("/api/v1/advisories/{}/vex", f.advisory);

        let (status, acme) = app.get(&path, &f.acme.admin.token).await;
        assert_eq!(status, 200, "[{}] {acme}", app.backend.name());
        assert_eq!(acme["document"]["category"], "csaf_vex");
        assert_eq!(acme["document"]["distribution"]["tlp"]["label"], "AMBER");
        assert_eq!(
            acme["document"]["tracking"]["id"],
            format!("{}-VEX-ACME", f.advisory).as_str()
        );
        let (versions, status_of) = vex_versions(&acme);
        assert_eq!(
            versions,
            set(&["6.2.0r1", "6.3.0r19", "6.3.0r20", "6.3.0r21"]),
            "acme's versions only"
        );
        assert_eq!(status_of["known_affected"], set(&["6.3.0r19", "6.3.0r20"]));
        assert_eq!(status_of["fixed"], set(&["6.3.0r21"]));
        assert_eq!(status_of["known_not_affected"], set(&["6.2.0r1"]));
        let text = acme.to_string();
        assert!(
            !text.contains("6.3.0r11") && !text.contains("6.3.0r18"),
            "globex's versions leaked"
        );
        assert!(!text.contains("Globex") && !text.contains("globex"), "globex is named");
        let remediations = acme["vulnerabilities"][0]["remediations"].as_array().unwrap();
        let fix = remediations
            .iter()
            .find(|r| r["category"] == "vendor_fix")
            .expect("a vendor fix");
        assert!(fix["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/v1/patches/{patch}/download")));
        assert!(
            fix["details"]
                .as_str()
                .unwrap()
                .contains("2 devices of acme networks on ScreenOS 6.3.0r19"),
            "{fix}"
        );
        let impact = &acme["vulnerabilities"][0]["threats"][0];
        assert_eq!(impact["category"], "impact");
        assert!(
            impact["details"]
                .as_str()
                .unwrap()
                .contains("outside every affected range"),
            "{impact}"
        );

        let (status, globex) = app.get(&path, &f.globex.admin.token).await;
        assert_eq!(status, 200, "{globex}");
        let (versions, status_of) = vex_versions(&globex);
        assert_eq!(versions, set(&["6.3.0r11", "6.3.0r18"]), "globex's versions only");
        assert_eq!(status_of["known_affected"], set(&["6.3.0r18"]));
        assert_eq!(status_of["known_not_affected"], set(&["6.3.0r11"]));
        assert!(!globex.to_string().contains("6.3.0r20"), "acme's versions leaked");

        // Who may ask: a customer's admins, for a published advisory.
        assert_eq!(app.get(&path, &f.vendor.token).await.0, 403, "the vendor has no fleet");
        assert_eq!(app.get(&path, "").await.0, 401);
        assert_eq!(
            app.get("/api/v1/advisories/PW-1999-0001/vex", &f.acme.admin.token)
                .await
                .0,
            404
        );

        // fw-a installs the fix: it leaves the affected versions.
        let token = acme_devices[0]["token"].as_str().unwrap();
        poll(&app, token, json!({"version": "6.3.0r21"})).await;
        patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .unwrap();
        let (_, after) = app.get(&path, &f.acme.admin.token).await;
        let (versions, status_of) = vex_versions(&after);
        assert_eq!(versions, set(&["6.2.0r1", "6.3.0r19", "6.3.0r21"]));
        assert_eq!(status_of["known_affected"], set(&["6.3.0r19"]));
        assert_eq!(status_of["fixed"], set(&["6.3.0r21"]));
        assert_ne!(after, acme, "the VEX did not change after a fix");
        let fix = &after["vulnerabilities"][0]["remediations"][0]["details"];
        assert!(
            fix.as_str()
                .unwrap()
                .starts_with("2 devices of acme networks on ScreenOS 6.3.0r19"),
            "{fix}"
        );

        assert_csaf_valid(&[acme, globex, after]);
    }
}

#[actix_web::test]
async fn a_key_rotation_replaces_the_openpgp_key_and_what_the_old_one_signed_still_verifies() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let second = publish_advisory(&app, &f.vendor.token, second_advisory()).await;
        let second_path = walk_path(&app, second["id"].as_str().unwrap()).await;
        let before = walk(&app).await;
        assert_eq!(before.keys.len(), 1);

        patchwarden::signing::rotate(&app.config.keys_dir, None, None, "2026-11-28T00:00:00Z", None).unwrap();
        let app = app.restart().await;
        let after = walk(&app).await;
        assert_eq!(
            after.keys.len(),
            2,
            "[{}] the new key and the retired one",
            app.backend.name()
        );
        assert_eq!(
            after.keys[1], before.keys[0],
            "the retired key is listed after the new one"
        );
        assert_ne!(gpg_fingerprint(&after.keys[0]), gpg_fingerprint(&before.keys[0]));

        // A revision after the rotation is signed by the new key alone.
        revise(&app, &f, "Re-signed after the key rotation.", "6.3.0r12").await;
        let revised = walk(&app).await;
        let first_path = walk_path(&app, &f.advisory).await;
        let signature_of = |path: &str| app.url(&format!("/.well-known/csaf/white/{path}.asc"));
        let first_signature = fetch_text(&app, &signature_of(&first_path)).await;
        let first_bytes = &revised.documents[&first_path];
        assert!(openpgp_verifies(first_bytes, &first_signature, &revised.keys[..1]));
        assert!(!openpgp_verifies(first_bytes, &first_signature, &revised.keys[1..]));
        // The document signed before the rotation verifies with the retired key alone.
        let second_signature = fetch_text(&app, &signature_of(&second_path)).await;
        let second_bytes = &revised.documents[&second_path];
        assert!(openpgp_verifies(second_bytes, &second_signature, &revised.keys[1..]));
        assert!(!openpgp_verifies(second_bytes, &second_signature, &revised.keys[..1]));
    }
}

/// GETs `path` with `token` (none when empty): the status and the body.
async fn fetch_as(app: &TestApp, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = client().get(app.url(path));
    if !token.is_empty() {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

#[actix_web::test]
async fn an_amber_advisory_is_only_for_the_customers_it_names_and_its_csaf_only_behind_sign_in() {
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        entitle_globex(&app, &f).await;
        enrol(&app, &f, "fw-a", "6.3.0r20").await;
        let acme_old = enrol(&app, &f, "fw-old", "6.2.0r5").await;
        let mut globex_old = Value::Null;
        for (name, version) in [("gx-1", "6.3.0r20"), ("gx-old", "6.2.0r5")] {
            let body = json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version});
            let (status, device) = app.post("/api/v1/devices", &f.globex.admin.token, body).await;
            assert_eq!(status, 201, "{device}");
            globex_old = device;
        }

        // What a restricted advisory must say of its readers, refused with the field named.
        let restricted = |tlp: &str, customers: Value| {
            json!({
                "title": "Private key disclosure in ScreenOS VPN", "summary": "Acme's cluster keys.",
                "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:N", "emergency": true,
                "tlp": tlp, "customers": customers,
                "affected": [{"product": "screenos", "ranges": [{"introduced": "6.2.0r1", "fixed": "6.2.0r9"},
                                                                 {"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
            })
        };
        for (tlp, customers, field) in [
            ("GREEN", json!(["acme"]), "tlp"),
            ("AMBER", json!([]), "customers"),
            ("AMBER", json!(["initech"]), "customers[0]"),
            ("WHITE", json!(["acme"]), "customers"),
            ("RED", json!(["Acme Corp"]), "customers[0]"),
        ] {
            let (status, body) = app
                .post("/api/v1/advisories", &f.vendor.token, restricted(tlp, customers))
                .await;
            assert_eq!(status, 422, "[{}] {tlp}: {body}", app.backend.name());
            assert_eq!(body["error"]["field"], field, "{body}");
        }
        let published = publish_advisory(&app, &f.vendor.token, restricted("amber", json!(["acme"]))).await;
        let id = published["id"].as_str().unwrap().to_owned();

        // Anyone: it does not exist.
        let lower = id.to_lowercase();
        assert_eq!(fetch_as(&app, &format!("/api/v1/advisories/{id}"), "").await.0, 404);
        assert_eq!(
            fetch_as(&app, &format!("/api/v1/advisories/{id}/revisions/1/minisig"), "")
                .await
                .0,
            404
        );
        assert_eq!(fetch_as(&app, &format!("/advisories/{id}"), "").await.0, 404);
        for path in [
            "/api/v1/advisories",
            "/advisories",
            "/feeds/advisories.atom",
            "/.well-known/csaf/white/index.txt",
        ] {
            let (status, _, body) = fetch_as(&app, path, "").await;
            assert_eq!(status, 200, "{path}");
            let text = String::from_utf8(body).unwrap().to_lowercase();
            assert!(!text.contains(&lower), "{path} shows {id} to anyone");
        }
        let (_, query) = app
            .post(
                "/api/v1/query",
                "",
                json!({"product": "screenos", "version": "6.3.0r20"}),
            )
            .await;
        assert!(!query.to_string().contains(&id), "the query names {id} to anyone");
        for path in [
            "/.well-known/csaf/amber/index.txt",
            "/.well-known/csaf/feed-tlp-amber.json",
        ] {
            assert_eq!(fetch_as(&app, path, "").await.0, 401, "{path} without credentials");
        }

        // Acme, whom it names: the API, the page, and the TLP:AMBER distribution.
        let acme = &f.acme.admin.token;
        let (status, document) = app.get(&format!("/api/v1/advisories/{id}"), acme).await;
        assert_eq!(status, 200, "{document}");
        assert_eq!(document["tlp"], "AMBER");
        assert_eq!(document["customers"], json!(["acme"]));
        let (_, list) = app.get("/api/v1/advisories", acme).await;
        assert!(list.to_string().contains(&id));
        let (status, headers, _) = fetch_as(&app, &format!("/api/v1/advisories/{id}"), acme).await;
        assert_eq!(status, 200);
        assert_eq!(
            headers["cache-control"], "private, no-store",
            "a shared cache must not keep it"
        );
        let (_, _, index) = fetch_as(&app, "/.well-known/csaf/amber/index.txt", acme).await;
        let path = String::from_utf8(index).unwrap().trim().to_owned();
        assert_eq!(path, format!("{}/{lower}.json", chrono::Utc::now().format("%Y")));
        let (status, _, feed) = fetch_as(&app, "/.well-known/csaf/feed-tlp-amber.json", acme).await;
        assert_eq!(status, 200);
        let feed: Value = serde_json::from_slice(&feed).unwrap();
        assert_eq!(feed["feed"]["entry"][0]["id"], id.as_str());
        let url = format!("/.well-known/csaf/amber/{path}");
        assert_eq!(feed["feed"]["entry"][0]["link"][0]["href"], app.url(&url).as_str());
        let (status, headers, csaf) = fetch_as(&app, &url, acme).await;
        assert_eq!(status, 200);
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "open to other origins"
        );
        let (_, _, sha512) = fetch_as(&app, &format!("{url}.sha512"), acme).await;
        let name = format!("{lower}.json");
        assert_eq!(
            hash_line(std::str::from_utf8(&sha512).unwrap(), &name),
            hex::encode(Sha512::digest(&csaf))
        );
        let (_, _, signature) = fetch_as(&app, &format!("{url}.asc"), acme).await;
        let keys = walk(&app).await.keys;
        assert!(openpgp_verifies(&csaf, std::str::from_utf8(&signature).unwrap(), &keys));
        let csaf: Value = serde_json::from_slice(&csaf).unwrap();
        assert_eq!(csaf["document"]["distribution"]["tlp"]["label"], "AMBER");
        assert_eq!(
            fetch_as(&app, &format!("/.well-known/csaf/white/{path}"), "").await.0,
            404
        );
        let (status, exposure) = app.get(&format!("/api/v1/advisories/{id}/exposure"), acme).await;
        assert_eq!(status, 200, "{exposure}");
        assert_eq!(exposure["affected"], 2);
        let (status, vex) = app.get(&format!("/api/v1/advisories/{id}/vex"), acme).await;
        assert_eq!(status, 200, "{vex}");
        assert_eq!(vex["document"]["distribution"]["tlp"]["label"], "AMBER");
        assert_csaf_valid(&[csaf, vex]);

        // Globex, whose devices run an affected version too: it does not exist.
        let globex = &f.globex.admin.token;
        for path in [
            format!("/api/v1/advisories/{id}"),
            format!("/api/v1/advisories/{id}/exposure"),
            format!("/api/v1/advisories/{id}/vex"),
            format!("/api/v1/advisories/{id}/evidence"),
            url.clone(),
            format!("{url}.asc"),
        ] {
            assert_eq!(
                fetch_as(&app, &path, globex).await.0,
                404,
                "[{}] {path} for globex",
                app.backend.name()
            );
        }
        for path in [
            "/api/v1/advisories",
            "/.well-known/csaf/amber/index.txt",
            "/.well-known/csaf/feed-tlp-amber.json",
        ] {
            let (status, _, body) = fetch_as(&app, path, globex).await;
            assert_eq!(status, 200, "{path}");
            assert!(
                !String::from_utf8(body).unwrap().to_lowercase().contains(&lower),
                "{path} shows {id} to globex"
            );
        }
        let acme_session = support::sign_in(&app, &f.acme.admin).await;
        let (status, html) = app.page(&acme_session, &format!("/advisories/{id}")).await;
        assert_eq!(status, 200);
        assert!(
            html.contains("TLP:AMBER · for acme only"),
            "the page does not say whom it is for"
        );
        let session = support::sign_in(&app, &f.globex.admin).await;
        for page in ["/", "/fleet/devices"] {
            let (status, html) = app.page(&session, page).await;
            assert_eq!(status, 200);
            assert!(!html.contains(&id), "{page} shows {id} to globex");
        }

        // The vendor reads it, and counts only acme's device as exposed.
        let (status, exposure) = app
            .get(&format!("/api/v1/advisories/{id}/exposure"), &f.vendor.token)
            .await;
        assert_eq!(status, 200, "{exposure}");
        assert_eq!(exposure["affected"], 2, "globex's devices counted: {exposure}");

        // An emergency for acme alone: its device on 6.2.0r5 polls at the emergency
        // interval (5 min, spread), globex's on the same version at the usual one.
        let acme_answer = poll(&app, acme_old["token"].as_str().unwrap(), json!({"version": "6.2.0r5"})).await;
        let interval = acme_answer["poll_interval_s"].as_u64().unwrap();
        assert!((240..=300).contains(&interval), "acme's interval {interval}");
        let globex_answer = poll(
            &app,
            globex_old["token"].as_str().unwrap(),
            json!({"version": "6.2.0r5"}),
        )
        .await;
        let interval = globex_answer["poll_interval_s"].as_u64().unwrap();
        assert!(
            (1440..=1800).contains(&interval),
            "globex's interval {interval}: the emergency leaked"
        );
        assert_eq!(fetch_as(&app, &url, &f.vendor.token).await.0, 200);
    }
}
