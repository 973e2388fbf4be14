//! Browser tests: headless Chromium driven through chromedriver. Without a browser
//! on the machine they print a notice and pass, unless `PATCHWARDEN_REQUIRE_BROWSER`
//! is set (as CI does), in which case a missing browser fails the run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use support::TestApp;

struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_chromedriver() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PATCHWARDEN_CHROMEDRIVER") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromedriver", "/usr/local/bin/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Starts chromedriver, or says why the browser tests are skipped.
async fn start_driver() -> Option<Driver> {
    let Some(path) = find_chromedriver() else {
        assert!(
            std::env::var_os("PATCHWARDEN_REQUIRE_BROWSER").is_none(),
            "PATCHWARDEN_REQUIRE_BROWSER is set but chromedriver is not installed"
        );
        eprintln!("notice: chromedriver not found; browser tests skipped (install chromium and chromium-driver)");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client.get(format!("{}/status", driver.url)).send().await;
        if let Ok(response) = ready {
            let status: serde_json::Value = response.json().await.unwrap_or_default();
            if status["value"]["ready"] == true {
                return Some(driver);
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not become ready in 30 s");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn type_into(client: &Client, id: &str, text: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

async fn click(client: &Client, id: &str) {
    client.find(Locator::Id(id)).await.unwrap().click().await.unwrap();
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": std::env::var("PATCHWARDEN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--no-first-run", "--disable-component-update", "--disable-sync"]
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session")
}

#[actix_web::test]
async fn login_and_logout_in_headless_chromium() {
    let Some(driver) = start_driver().await else {
        return;
    };
    for app in TestApp::each().await {
        let admin = app.with_vendor_admin().await;
        let client = browser(&driver).await;

        client.goto(&app.url("/login")).await.unwrap();
        type_into(&client, "email", &admin.email).await;
        type_into(&client, "password", "not the password").await;
        click(&client, "login-submit").await;
        let error = client.wait().for_element(Locator::Id("login-error")).await.unwrap();
        assert!(error.text().await.unwrap().contains("wrong e-mail or password"));

        type_into(&client, "password", &admin.password).await;
        click(&client, "login-submit").await;
        let whoami = client.wait().for_element(Locator::Id("whoami")).await.unwrap();
        assert!(whoami.text().await.unwrap().contains(&admin.email));
        assert_eq!(client.current_url().await.unwrap().path(), "/");
        let heading = client
            .find(Locator::Css("main h1"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(heading, "Vendor console");

        let cookies = client.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|c| c.name() == "pw_session")
            .expect("session cookie");
        assert_eq!(session.http_only(), Some(true));

        click(&client, "logout").await;
        client.wait().for_element(Locator::Id("login-form")).await.unwrap();
        assert_eq!(client.current_url().await.unwrap().path(), "/login");
        client.goto(&app.url("/account")).await.unwrap();
        client.wait().for_element(Locator::Id("login-form")).await.unwrap();

        client.close().await.unwrap();
    }
}

#[actix_web::test]
async fn the_advisory_index_filters_and_opens_an_advisory() {
    let Some(driver) = start_driver().await else {
        return;
    };
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        let product = serde_json::json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
        let mut ids = Vec::new();
        for (title, vector, cve, emergency) in [
            (
                "Unauthorized code in ScreenOS",
                "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
                "CVE-2015-7755",
                true,
            ),
            (
                "ScreenOS web UI cross-site scripting",
                "CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N",
                "CVE-2024-0001",
                false,
            ),
        ] {
            let body = serde_json::json!({
                "title": title, "summary": "Details.", "cvss_v3": vector, "cves": [cve], "emergency": emergency,
                "affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}]
            });
            let (_, draft) = app.post("/api/v1/advisories", &vendor.token, body).await;
            let key = draft["id"].as_str().unwrap().to_owned();
            let (status, published) = app
                .post(
                    &format!("/api/v1/advisories/{key}/publish"),
                    &vendor.token,
                    serde_json::json!({}),
                )
                .await;
            assert_eq!(status, 201, "{published}");
            ids.push(published["id"].as_str().unwrap().to_owned());
        }
        let client = browser(&driver).await;
        client.goto(&app.url("/advisories")).await.unwrap();
        let rows = client.find_all(Locator::Css("#advisories tbody tr")).await.unwrap();
        assert_eq!(rows.len(), 2);

        client
            .find(Locator::Css("#f-severity option[value='critical']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        click(&client, "filter-submit").await;
        client
            .wait()
            .for_url(&url::Url::parse(&app.url("/advisories?product=&severity=critical&cve=&q=")).unwrap())
            .await
            .unwrap();
        let rows = client.find_all(Locator::Css("#advisories tbody tr")).await.unwrap();
        assert_eq!(rows.len(), 1, "the severity filter left other rows");
        assert!(rows[0].text().await.unwrap().contains("EMERGENCY"));

        client
            .find(Locator::Css("a.advisory-link"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let heading = client.wait().for_element(Locator::Css("article h1")).await.unwrap();
        assert!(heading.text().await.unwrap().contains("Unauthorized code in ScreenOS"));
        assert_eq!(
            client.current_url().await.unwrap().path(),
            format!("/advisories/{}", ids[0])
        );
        let steps = client
            .find(Locator::Id("verify-steps"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(steps.contains("minisign -Vm"));
        client.close().await.unwrap();
    }
}

#[actix_web::test]
async fn a_vendor_uploads_a_patch_file_with_the_page_script() {
    let Some(driver) = start_driver().await else {
        return;
    };
    for app in TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        let product = serde_json::json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
        let draft = serde_json::json!({"product": "screenos", "version": "6.3.0r21", "filename": "fix.bin"});
        let (status, patch) = app.post("/api/v1/patches", &vendor.token, draft).await;
        assert_eq!(status, 201, "{patch}");
        let id = patch["id"].as_str().unwrap().to_owned();
        let file = app.data_dir.path().join("fix.bin");
        // Larger than the script's 4 MiB slice, so the file goes in several requests.
        let bytes: Vec<u8> = (0..9_500_000u32).map(|i| (i % 249) as u8).collect();
        std::fs::write(&file, &bytes).unwrap();

        let client = browser(&driver).await;
        client.goto(&app.url("/login")).await.unwrap();
        type_into(&client, "email", &vendor.email).await;
        type_into(&client, "password", &vendor.password).await;
        click(&client, "login-submit").await;
        client.wait().for_element(Locator::Id("whoami")).await.unwrap();

        client.goto(&app.url(&format!("/vendor/patches/{id}"))).await.unwrap();
        type_into(&client, "upload-file", &file.to_string_lossy()).await;
        click(&client, "upload-submit").await;
        // The script reloads the page once the server has the file; the form is gone then.
        let sha = patchwarden::secrets::sha256_hex(&bytes);
        client
            .wait()
            .for_element(Locator::XPath(&format!(
                "//code[@id='patch-sha256' and text()='{sha}']"
            )))
            .await
            .unwrap();
        click(&client, "publish-patch").await;
        client
            .wait()
            .for_element(Locator::XPath(
                "//dd[@id='patch-state' and starts-with(normalize-space(text()), 'published')]",
            ))
            .await
            .unwrap();
        client.close().await.unwrap();
    }
}

#[actix_web::test]
async fn the_fleet_dashboard_shows_exposure_and_the_device_page_its_timeline() {
    use support::patching::{file_bytes, fixture, publish_patch};
    let Some(driver) = start_driver().await else {
        return;
    };
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        publish_patch(&app, &f, "6.3.0r21", file_bytes(256)).await;
        let mut tokens = Vec::new();
        for (name, version) in [("fw-r20", "6.3.0r20"), ("fw-r19", "6.3.0r19"), ("fw-6.2", "6.2.0r10")] {
            let body =
                serde_json::json!({"name": name, "product": "screenos", "platform": "ssg-500", "version": version});
            let (status, device) = app.post("/api/v1/devices", &f.acme.admin.token, body).await;
            assert_eq!(status, 201, "{device}");
            tokens.push((
                device["id"].as_str().unwrap().to_owned(),
                device["token"].as_str().unwrap().to_owned(),
            ));
        }
        // fw-r19 moves to the fix; the others stay.
        let (status, _) = app
            .post(
                "/api/v1/device/poll",
                &tokens[1].1,
                serde_json::json!({"version": "6.3.0r21"}),
            )
            .await;
        assert_eq!(status, 200);
        patchwarden::jobs::run_once(&app.state, patchwarden::jobs::Job::FlushObservations)
            .await
            .unwrap();

        let client = browser(&driver).await;
        client.goto(&app.url("/login")).await.unwrap();
        type_into(&client, "email", &f.acme.admin.email).await;
        type_into(&client, "password", &f.acme.admin.password).await;
        click(&client, "login-submit").await;
        client.wait().for_element(Locator::Id("whoami")).await.unwrap();

        click(&client, "fleet-link").await;
        let card = client
            .wait()
            .for_element(Locator::Id(&format!("advisory-{}", f.advisory)))
            .await
            .unwrap();
        let text = card.text().await.unwrap();
        assert!(
            text.contains("Unauthorized code in ScreenOS") && text.to_lowercase().contains("emergency"),
            "{text}"
        );
        let affected = card
            .find(Locator::Css("td.affected"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let fixed = card.find(Locator::Css("td.fixed")).await.unwrap().text().await.unwrap();
        let unaffected = card
            .find(Locator::Css("td.unaffected"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            (affected.as_str(), fixed.as_str(), unaffected.as_str()),
            ("1", "1", "1")
        );
        // The chart is drawn: a line whose last point is at half height (1 of 2 fixed).
        let line = card.find(Locator::Css("svg.chart polyline")).await.unwrap();
        let points = line.attr("points").await.unwrap().unwrap();
        let last_y: f64 = points
            .split(' ')
            .next_back()
            .unwrap()
            .split(',')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert!((last_y - 72.0).abs() < 0.5, "last point {points}");

        // From the affected count to the device and its timeline.
        card.find(Locator::Css("td.affected a"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        client
            .wait()
            .for_element(Locator::LinkText("fw-r20"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let name = client.wait().for_element(Locator::Id("device-name")).await.unwrap();
        assert_eq!(name.text().await.unwrap(), "fw-r20");
        client
            .goto(&app.url(&format!("/fleet/devices/{}", tokens[1].0)))
            .await
            .unwrap();
        let timeline = client.wait().for_element(Locator::Id("timeline")).await.unwrap();
        let rows = timeline.find_all(Locator::Css("tr")).await.unwrap();
        assert_eq!(rows.len(), 3, "a header and two versions");
        let newest = rows[1].text().await.unwrap();
        assert!(newest.contains("6.3.0r21") && newest.contains("poll"), "{newest}");
        assert!(rows[2].text().await.unwrap().contains("6.3.0r19"));
        client.close().await.unwrap();
    }
}

/// Reads the demo's output until it has printed its URL and the acme login.
fn demo_banner(stdout: std::process::ChildStdout) -> (String, String, String) {
    use std::io::BufRead;
    let (mut url, mut acme) = (None, None);
    let mut lines = std::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line.expect("the demo's output");
        if let Some(rest) = line.trim().strip_prefix("patchwarden demo: open ") {
            url = Some(rest.trim_end_matches('/').to_owned());
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["customer-admin", email @ "admin@acme.example", "password", password] = words[..] {
            acme = Some((email.to_owned(), password.to_owned()));
        }
        if let (Some(url), Some((email, password))) = (&url, &acme) {
            // Whatever the demo prints later is read (and dropped), not left to a
            // closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return (url.clone(), email.clone(), password.clone());
        }
    }
    panic!("the demo ended before printing its URL and logins");
}

struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cell(text: &str) -> i64 {
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{text}` is not a count"))
}

#[actix_web::test]
async fn the_demo_fills_the_dashboard_within_two_minutes() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchwarden"))
        .args(["demo", "--devices", "90", "--dir"])
        .arg(dir.path().join("demo"))
        .env("PATCHWARDEN_BIND", "127.0.0.1:0")
        .env("PATCHWARDEN_LOG_LEVEL", "warn")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    let (url, email, password) = tokio::task::spawn_blocking(move || demo_banner(stdout)).await.unwrap();

    let client = browser(&driver).await;
    client.set_window_size(1400, 1800).await.unwrap();
    client.goto(&format!("{url}/login")).await.unwrap();
    type_into(&client, "email", &email).await;
    type_into(&client, "password", &password).await;
    click(&client, "login-submit").await;
    client.wait().for_element(Locator::Id("whoami")).await.unwrap();

    // The dashboard fills as the simulated fleet enrols, installs and is pulled: some
    // devices fixed, some still affected, one claiming an install it does not run,
    // an image no release explains, and a chart with more than one point.
    let started = Instant::now();
    let (counts, points) = loop {
        client.goto(&format!("{url}/fleet")).await.unwrap();
        let card = client
            .wait()
            .for_element(Locator::Css("article.exposure.emergency"))
            .await
            .unwrap();
        let mut counts = Vec::new();
        for class in ["affected", "fixed", "claimed"] {
            let text = card
                .find(Locator::Css(&format!("td.{class}")))
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            counts.push(cell(&text));
        }
        let points = match card.find(Locator::Css("svg.chart polyline")).await {
            Ok(line) => line.attr("points").await.unwrap().unwrap_or_default(),
            Err(_) => String::new(),
        };
        let anomalies = client
            .find_all(Locator::Css("#anomalies tr.kind-unknown_image"))
            .await
            .unwrap();
        let ready = counts[0] > 0 && counts[1] > 0 && counts[2] > 0 && !anomalies.is_empty();
        if ready && points.split(' ').count() >= 2 {
            break (counts, points);
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "the dashboard did not fill: affected/fixed/claimed {counts:?}, {} unknown-image anomalies, chart `{points}`",
            anomalies.len()
        );
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    };
    // The chart climbs: the newest point shows a larger share fixed than the first.
    let ys: Vec<f64> = points
        .split(' ')
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        ys.last().unwrap() < ys.first().unwrap(),
        "the chart does not climb: {points}"
    );
    assert!(counts[1] > 0, "{counts:?}");

    let shot = client.screenshot().await.unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let path = std::env::temp_dir().join("patchwarden-demo-dashboard.png");
    std::fs::write(&path, &shot).unwrap();
    eprintln!("dashboard screenshot: {} ({} bytes)", path.display(), shot.len());
    client.close().await.unwrap();
}
