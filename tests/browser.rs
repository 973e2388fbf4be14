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

/// What the browser tests check on every page they visit: every input, select and
/// text area has a label; every table has header cells; each emergency banner's
/// text stands out from its background (WCAG AA, 4.5:1); no script comes from
/// another origin. The problems found, and how many banners were measured.
async fn accessibility(client: &Client) -> (Vec<String>, u64) {
    let script = r#"
        const problems = [];
        for (const el of document.querySelectorAll('input, select, textarea')) {
            if (el.type === 'hidden' || el.type === 'submit') continue;
            if (!((el.labels && el.labels.length > 0) || el.getAttribute('aria-label'))) {
                problems.push('unlabelled: ' + el.outerHTML.slice(0, 100));
            }
        }
        for (const t of document.querySelectorAll('table')) {
            if (!t.querySelector('th')) problems.push('a table without header cells: ' + (t.id || t.className));
        }
        const luminance = (colour) => {
            const [r, g, b] = colour.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
                v /= 255;
                return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
            });
            return 0.2126 * r + 0.7152 * g + 0.0722 * b;
        };
        const banners = document.querySelectorAll('.banner');
        for (const banner of banners) {
            const style = getComputedStyle(banner);
            const [fg, bg] = [luminance(style.color), luminance(style.backgroundColor)];
            const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
            if (ratio < 4.5) problems.push('the emergency banner contrast is ' + ratio.toFixed(2) + ':1');
        }
        for (const s of document.querySelectorAll('script[src]')) {
            if (new URL(s.src).origin !== location.origin) problems.push('a script from elsewhere: ' + s.src);
        }
        return [problems, banners.length];
    "#;
    let found = client.execute(script, Vec::new()).await.unwrap();
    let problems = found[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    (problems, found[1].as_u64().unwrap())
}

/// Checks the page the browser shows for the basics of accessibility; how many
/// emergency banners it measured.
async fn accessible(client: &Client) -> u64 {
    let (problems, banners) = accessibility(client).await;
    let url = client.current_url().await.unwrap();
    assert!(problems.is_empty(), "{url}: {problems:#?}");
    banners
}

/// Where a screenshot goes: `docs/screens/` when `PATCHWARDEN_UPDATE_SCREENS` is set
/// (the committed pictures the README shows), a temporary folder otherwise.
fn screenshot_path(name: &str) -> PathBuf {
    let dir = match std::env::var_os("PATCHWARDEN_UPDATE_SCREENS") {
        Some(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs").join("screens"),
        None => std::env::temp_dir().join("patchwarden-screens"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Saves what the browser shows, the whole page at 1280 px wide.
async fn screenshot(client: &Client, name: &str) {
    let height = client
        .execute("return document.documentElement.scrollHeight;", Vec::new())
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    client
        .set_window_size(1280, (height as u32 + 140).clamp(800, 4000))
        .await
        .unwrap();
    let shot = client.screenshot().await.unwrap();
    assert!(shot.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let path = screenshot_path(name);
    std::fs::write(&path, &shot).unwrap();
    eprintln!("screenshot: {} ({} bytes)", path.display(), shot.len());
}

async fn sign_in_as(client: &Client, base: &str, email: &str, password: &str) {
    client.goto(&format!("{base}/login")).await.unwrap();
    type_into(client, "email", email).await;
    type_into(client, "password", password).await;
    click(client, "login-submit").await;
    client.wait().for_element(Locator::Id("whoami")).await.unwrap();
}

#[actix_web::test]
async fn a_customer_admin_adds_a_colleague_on_a_screen_and_the_colleague_signs_in() {
    use support::patching::fixture;
    let Some(driver) = start_driver().await else {
        return;
    };
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let client = browser(&driver).await;
        client.set_window_size(1280, 1000).await.unwrap();
        let base = app.url("");
        let base = base.trim_end_matches('/');
        sign_in_as(&client, base, &f.acme.admin.email, &f.acme.admin.password).await;
        accessible(&client).await;
        click(&client, "people-link").await;
        client.wait().for_element(Locator::Id("invite-form")).await.unwrap();
        accessible(&client).await;
        type_into(&client, "email", "colleague@acme.example").await;
        click(&client, "invite").await;
        let password = client
            .wait()
            .for_element(Locator::Id("one-time-password"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(password.len(), 24, "[{}] {password}", app.backend.name());
        let listed = client.find(Locator::Id("people")).await.unwrap().text().await.unwrap();
        assert!(listed.contains("colleague@acme.example"), "{listed}");
        click(&client, "logout").await;
        client.wait().for_element(Locator::Id("login-form")).await.unwrap();

        // The colleague signs in with it and is asked for a password of its own.
        client.goto(&format!("{base}/login")).await.unwrap();
        type_into(&client, "email", "colleague@acme.example").await;
        type_into(&client, "password", &password).await;
        click(&client, "login-submit").await;
        client.wait().for_element(Locator::Id("one-time-notice")).await.unwrap();
        assert_eq!(client.current_url().await.unwrap().path(), "/account/password");
        accessible(&client).await;
        type_into(&client, "password", "the colleague's own secret").await;
        type_into(&client, "repeat", "the colleague's own secret").await;
        click(&client, "set-password").await;
        let heading = client.wait().for_element(Locator::Id("customer-name")).await.unwrap();
        assert!(!heading.text().await.unwrap().is_empty());
        let whoami = client.find(Locator::Id("whoami")).await.unwrap().text().await.unwrap();
        assert!(whoami.contains("colleague@acme.example"), "{whoami}");
        client.close().await.unwrap();
    }
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

/// The demo's terminal: every line it wrote on stdout and stderr, with when.
struct Terminal {
    lines: std::sync::mpsc::Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
}

impl Terminal {
    fn follow(child: &mut Child) -> Terminal {
        use std::io::BufRead;
        let (send, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let readers: [Box<dyn std::io::Read + Send>; 2] = [Box::new(out), Box::new(err)];
        for reader in readers {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(reader).lines() {
                    let Ok(line) = line else { return };
                    if send.send((Instant::now(), line)).is_err() {
                        return;
                    }
                }
            });
        }
        Terminal {
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `done` says what it looked for is there, or `limit` passes.
    fn until<T>(&mut self, limit: Duration, done: impl Fn(&[(Instant, String)]) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = done(&self.seen) {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("the demo did not print what was awaited in {limit:?}: {:#?}", self.seen),
            }
        }
    }

    /// Every line written before `deadline`, waiting for it to pass.
    fn lines_before(&mut self, deadline: Instant) -> Vec<String> {
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the demo ended early: {:#?}", self.seen)
                }
            }
        }
        self.seen
            .iter()
            .filter(|(at, _)| *at < deadline)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

/// A login the demo printed: role, e-mail, password.
type Login = (String, String, String);

/// The demo's URL and the logins it printed.
fn banner(lines: &[(Instant, String)]) -> Option<(String, Vec<Login>)> {
    let url = lines
        .iter()
        .find_map(|(_, l)| l.trim().strip_prefix("patchwarden demo: open "))?
        .trim_end_matches('/')
        .to_owned();
    let logins: Vec<Login> = lines
        .iter()
        .filter_map(|(_, l)| match l.split_whitespace().collect::<Vec<_>>()[..] {
            [role, email, "password", password] => Some((role.to_owned(), email.to_owned(), password.to_owned())),
            _ => None,
        })
        .collect();
    (logins.len() == 3).then_some((url, logins))
}

/// Each device of the device list page the browser shows, with its exposure.
async fn exposure_column(client: &Client) -> std::collections::BTreeMap<String, String> {
    let mut found = std::collections::BTreeMap::new();
    for row in client.find_all(Locator::Css("#devices tbody tr")).await.unwrap() {
        let id = row.attr("data-device").await.unwrap().unwrap();
        let state = row
            .find(Locator::Css("td.exposure"))
            .await
            .unwrap()
            .attr("data-state")
            .await
            .unwrap()
            .unwrap();
        found.insert(id, state);
    }
    found
}

#[actix_web::test]
async fn the_demo_is_quiet_and_its_consoles_answer_the_days_questions() {
    let Some(driver) = start_driver().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_patchwarden"))
        .args(["demo", "--devices", "90", "--dir"])
        .arg(dir.path().join("demo"))
        .env("PATCHWARDEN_BIND", "127.0.0.1:0")
        .env_remove("PATCHWARDEN_LOG_LEVEL")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut terminal = Terminal::follow(&mut child);
    let demo = Demo(child);
    let (url, logins) = terminal.until(Duration::from_secs(60), banner);
    let login = |role: &str| logins.iter().find(|l| l.0 == role).unwrap().clone();
    let (_, acme_email, acme_password) = login("customer-admin");
    let (_, vendor_email, vendor_password) = login("vendor-admin");

    // The customer admin's first screen after sign-in is the emergency: its deadline,
    // the time left and the counts, filling as the simulated fleet enrols, installs
    // and is pulled, with a chart that climbs and an image no release explains.
    let client = browser(&driver).await;
    client.set_window_size(1280, 1000).await.unwrap();
    sign_in_as(&client, &url, &acme_email, &acme_password).await;
    assert_eq!(client.current_url().await.unwrap().path(), "/");
    let fill_started = Instant::now();
    let (counts, points, advisory) = loop {
        client.goto(&format!("{url}/")).await.unwrap();
        let card = client
            .wait()
            .for_element(Locator::Css("article.exposure.emergency"))
            .await
            .unwrap();
        let deadline = card
            .find(Locator::Css(".deadline"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            deadline.contains(" UTC (in "),
            "the deadline and how far off it is: {deadline}"
        );
        assert!(
            card.find(Locator::Css(".time-left")).await.is_err(),
            "only an overdue deadline says so apart"
        );
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
            let id = card.attr("id").await.unwrap().unwrap();
            break (counts, points, id.trim_start_matches("advisory-").to_owned());
        }
        assert!(
            fill_started.elapsed() < Duration::from_secs(150),
            "the home did not fill: affected/fixed/claimed {counts:?}, {} unknown-image anomalies, chart `{points}`",
            anomalies.len()
        );
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    };
    // The emergency comes before the anomalies on the page.
    let order = client
        .execute(
            "return document.querySelector('article.emergency').compareDocumentPosition(document.getElementById('anomalies')) & Node.DOCUMENT_POSITION_FOLLOWING;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_ne!(order, 0, "the anomalies come before the emergency");
    let ys: Vec<f64> = points
        .split(' ')
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        ys.last().unwrap() < ys.first().unwrap(),
        "the chart does not climb: {points}"
    );
    assert!(counts[1] > 0, "{counts:?}");
    assert!(accessible(&client).await >= 1, "the emergency banner was measured");
    screenshot(&client, "customer-home.png").await;

    // The device list's exposure column says what the exposure API says, for every
    // device of the customer (read twice around the API, until the fleet holds still
    // long enough for the three to agree).
    let session = client
        .get_all_cookies()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "pw_session")
        .map(|c| format!("pw_session={}", c.value()))
        .unwrap();
    let http = reqwest::Client::new();
    let agreed = Instant::now();
    let listed = loop {
        client
            .goto(&format!("{url}/fleet/devices?advisory={advisory}&per_page=500"))
            .await
            .unwrap();
        let before = exposure_column(&client).await;
        let api: serde_json::Value = http
            .get(format!("{url}/api/v1/advisories/{advisory}/exposure?per_page=500"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let from_api: std::collections::BTreeMap<String, String> = api["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["state"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        client.refresh().await.unwrap();
        let after = exposure_column(&client).await;
        if before == after && after == from_api {
            break after;
        }
        assert!(
            agreed.elapsed() < Duration::from_secs(90),
            "the list and the API disagree: {before:?} / {from_api:?} / {after:?}"
        );
    };
    assert!(listed.len() >= 50, "acme has about 60 devices: {}", listed.len());
    assert!(listed.values().any(|s| s == "affected") && listed.values().any(|s| s == "fixed"));
    accessible(&client).await;

    // A device page says why it is exposed.
    let exposed = listed.iter().find(|(_, s)| *s == "affected").unwrap().0.clone();
    client.goto(&format!("{url}/fleet/devices/{exposed}")).await.unwrap();
    let why = client
        .wait()
        .for_element(Locator::Css(&format!(
            "#device-advisories tr[data-advisory='{advisory}'] td.why"
        )))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(why.contains("inside the affected range"), "{why}");
    accessible(&client).await;
    screenshot(&client, "device.png").await;
    client.close().await.unwrap();

    // The vendor's first screen: the emergency's progress per customer.
    let client = browser(&driver).await;
    client.set_window_size(1280, 1000).await.unwrap();
    sign_in_as(&client, &url, &vendor_email, &vendor_password).await;
    let table = client
        .wait()
        .for_element(Locator::Id(&format!("progress-{advisory}")))
        .await
        .unwrap();
    let mut customers = Vec::new();
    for row in table.find_all(Locator::Css("tbody tr.customer")).await.unwrap() {
        let slug = row.attr("data-customer").await.unwrap().unwrap();
        let affected = cell(
            &row.find(Locator::Css("td.affected"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        customers.push((slug, affected));
    }
    let mut slugs: Vec<&str> = customers.iter().map(|(s, _)| s.as_str()).collect();
    slugs.sort_unstable();
    assert_eq!(slugs, ["acme", "globex"], "{customers:?}");
    assert!(customers[0].1 >= customers[1].1, "most exposed first: {customers:?}");
    assert!(accessible(&client).await >= 1);
    screenshot(&client, "vendor-home.png").await;

    // The log page fits the window and names devices and users.
    client.set_window_size(1280, 1000).await.unwrap();
    client.goto(&format!("{url}/vendor/log")).await.unwrap();
    client.wait().for_element(Locator::Id("log-entries")).await.unwrap();
    let fits = client
        .execute(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth;",
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(fits, serde_json::json!(true), "the log page is wider than the window");
    let subjects = client
        .find(Locator::Id("log-entries"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(subjects.contains("device "), "devices are named");
    assert!(
        client.find(Locator::Css("a.proof")).await.is_ok(),
        "entries link their proofs"
    );
    accessible(&client).await;
    screenshot(&client, "log.png").await;
    client.close().await.unwrap();

    // The terminal stayed readable: the banner, then a short line every few seconds.
    let first_minute = terminal.lines_before(started + Duration::from_secs(60));
    assert!(
        first_minute.len() <= 30,
        "{} lines in the first minute: {first_minute:#?}",
        first_minute.len()
    );
    assert!(
        first_minute
            .iter()
            .any(|l| l.contains("devices enrolled") && l.contains("fixed")),
        "{first_minute:#?}"
    );
    let log = dir.path().join("demo").join("server.log");
    assert!(
        std::fs::metadata(&log).unwrap().len() > 10_000,
        "the server's log went to its file"
    );
    // Ctrl-C stops it and says where the log is.
    let interrupted = Command::new("kill")
        .args(["-INT", &demo.0.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let goodbye = terminal.until(Duration::from_secs(30), |lines| {
        lines
            .iter()
            .find(|(_, l)| l.contains("patchwarden demo stopped"))
            .map(|(_, l)| l.clone())
    });
    assert!(goodbye.contains(&log.display().to_string()), "{goodbye}");
}
