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
        client
            .find(Locator::Id("email"))
            .await
            .unwrap()
            .send_keys(&admin.email)
            .await
            .unwrap();
        client
            .find(Locator::Id("password"))
            .await
            .unwrap()
            .send_keys("not the password")
            .await
            .unwrap();
        client
            .find(Locator::Id("login-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let error = client.wait().for_element(Locator::Id("login-error")).await.unwrap();
        assert!(error.text().await.unwrap().contains("wrong e-mail or password"));

        client
            .find(Locator::Id("password"))
            .await
            .unwrap()
            .send_keys(&admin.password)
            .await
            .unwrap();
        client
            .find(Locator::Id("login-submit"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
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

        client.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
        client.wait().for_element(Locator::Id("login-form")).await.unwrap();
        assert_eq!(client.current_url().await.unwrap().path(), "/login");
        client.goto(&app.url("/account")).await.unwrap();
        client.wait().for_element(Locator::Id("login-form")).await.unwrap();

        client.close().await.unwrap();
    }
}
