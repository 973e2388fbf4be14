//! The test harness: [`TestApp`] starts a real server on a loopback port with its
//! own database — a fresh SQLite file, and a fresh PostgreSQL database when
//! `PATCHWARDEN_TEST_POSTGRES_URL` is set — and offers fixture builders for
//! customers, users and tokens. Tests go through HTTP, the front door.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod devices;
pub mod endpoint;
pub mod mitm;
pub mod patching;
pub mod process;
pub mod proxy;

use std::net::TcpListener;
use std::sync::Once;

use actix_web::web;
use base64::Engine;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use hmac::Mac;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

use patchwarden::config::RawSettings;
use patchwarden::services::accounts::{self, UserDraft};
use patchwarden::state::AppState;

/// The environment variable that names the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "PATCHWARDEN_TEST_POSTGRES_URL";
/// The password every fixture user gets.
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backends this run covers: SQLite always, PostgreSQL when configured.
pub fn backends() -> Vec<Backend> {
    static NOTICE: Once = Once::new();
    if std::env::var(POSTGRES_ENV).is_ok_and(|v| !v.is_empty()) {
        vec![Backend::Sqlite, Backend::Postgres]
    } else {
        NOTICE.call_once(|| eprintln!("notice: {POSTGRES_ENV} is not set; integration tests run on SQLite only"));
        vec![Backend::Sqlite]
    }
}

std::thread_local! {
    /// The backend the test on this thread is working with.
    static CURRENT_BACKEND: std::cell::Cell<Option<Backend>> = const { std::cell::Cell::new(None) };
}

/// Marks `backend` as the one this thread's test works with from now on: a panic
/// (a failed assertion) then says which backend failed.
pub fn on_backend(backend: Backend) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(backend) = CURRENT_BACKEND.with(std::cell::Cell::get) {
                eprintln!("FAILED ON THE {} BACKEND", backend.name());
            }
            default(info);
        }));
    });
    CURRENT_BACKEND.with(|current| current.set(Some(backend)));
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// The apps of [`TestApp::each`], handed out one backend after the other.
pub struct Apps(std::vec::IntoIter<TestApp>);

impl Iterator for Apps {
    type Item = TestApp;

    fn next(&mut self) -> Option<TestApp> {
        let app = self.0.next()?;
        on_backend(app.backend);
        Some(app)
    }
}

/// A PostgreSQL database made for one test and dropped after it.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let admin_url = std::env::var(POSTGRES_ENV).expect("PostgreSQL URL");
        let name = format!("pw_test_{}", uuid_simple());
        let mut admin = PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {admin_url}: {e}"));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let mut url = url::Url::parse(&admin_url).expect("PostgreSQL URL");
        url.set_path(&name);
        // Loopback tests need no TLS; leaving it out keeps OpenSSL out of their teardown.
        if !url.query_pairs().any(|(key, _)| key == "sslmode") {
            url.query_pairs_mut().append_pair("sslmode", "disable");
        }
        PgDatabase {
            admin_url,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            if let Err(err) = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
                eprintln!("warning: could not drop test database {}: {err}", self.name);
            }
        }
    }
}

fn uuid_simple() -> String {
    patchwarden::secrets::random_hex(8)
}

/// A database location for one test on `backend`: the SQLite file lives in `dir`.
pub fn database_for(backend: Backend, dir: &TempDir) -> (String, Option<PgDatabase>) {
    match backend {
        Backend::Sqlite => (dir.path().join("patchwarden.db").to_string_lossy().into_owned(), None),
        Backend::Postgres => {
            let db = PgDatabase::create();
            (db.url.clone(), Some(db))
        }
    }
}

/// Someone who can call the API: a user with its e-mail, password and API token.
#[derive(Clone, Debug)]
pub struct Actor {
    pub email: String,
    pub password: String,
    pub token: String,
    pub user_id: String,
}

/// A customer with its first customer-admin.
#[derive(Clone, Debug)]
pub struct CustomerFixture {
    pub slug: String,
    pub id: String,
    pub admin: Actor,
}

/// Waits, checking every 20 ms, until `done` holds; fails naming `what` after `limit`.
pub async fn until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// What pulls and webhooks never reach in tests: the default but for loopback.
pub const TEST_OUTBOUND_DENY: &str = patchwarden::domain::network::DEFAULT_DENY_BUT_LOOPBACK;

/// The instance jobs on a thread and runtime of their own, as beside a server that
/// runs on its own threads: a test that waits synchronously (on a command-line
/// process talking to the server, say) cannot stall them, and so cannot stall a
/// request that waits on one of them.
pub struct InstanceJobs {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InstanceJobs {
    fn start(state: std::sync::Arc<AppState>) -> InstanceJobs {
        let jobs: Vec<patchwarden::jobs::Job> = patchwarden::jobs::Job::ALL
            .into_iter()
            .filter(|job| job.per_instance())
            .collect();
        Self::of(state, &jobs)
    }

    /// `jobs`, each on its interval, on a thread of their own until dropped.
    pub fn of(state: std::sync::Arc<AppState>, jobs: &[patchwarden::jobs::Job]) -> InstanceJobs {
        let jobs = jobs.to_vec();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the instance jobs");
            runtime.block_on(async move {
                let runner = patchwarden::jobs::start_jobs(state, &jobs);
                let _ = stopped.await;
                drop(runner);
            });
        });
        InstanceJobs {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InstanceJobs {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One running server with its own database.
pub struct TestApp {
    pub backend: Backend,
    pub config: patchwarden::config::Config,
    public_url_follows: bool,
    pub base: String,
    /// The database URL as configured (with any password), for the command line.
    pub database_url: String,
    pub client: reqwest::Client,
    pub state: web::Data<AppState>,
    pub data_dir: TempDir,
    _pg: Option<PgDatabase>,
    /// The instance jobs (fleet sync, observation flush), as `serve` runs them.
    _jobs: InstanceJobs,
}

impl TestApp {
    /// One app per backend under test.
    pub async fn each() -> Apps {
        Self::each_with(&[]).await
    }

    /// One app per backend, with extra settings. A failure while an app is in use
    /// names its backend.
    pub async fn each_with(settings: &[(&str, &str)]) -> Apps {
        let mut apps = Vec::new();
        for backend in backends() {
            apps.push(TestApp::start(backend, settings).await);
        }
        Apps(apps.into_iter())
    }

    pub async fn start(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let (database_url, pg) = database_for(backend, &data_dir);
        Self::start_on(backend, database_url, pg, data_dir, settings).await
    }

    /// An app on a database made by the caller (reached through a proxy, say).
    pub async fn start_on(
        backend: Backend,
        database_url: String,
        pg: Option<PgDatabase>,
        data_dir: TempDir,
        settings: &[(&str, &str)],
    ) -> TestApp {
        eprintln!("-- backend: {backend:?}");
        // Server-side warnings and errors show up in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_test_writer()
            .try_init();
        let mut raw = RawSettings::default();
        raw.set("data_dir", data_dir.path().to_string_lossy()).unwrap();
        raw.set("keys_dir", data_dir.path().join("keys").to_string_lossy())
            .unwrap();
        raw.set("database_url", database_url.clone()).unwrap();
        raw.set("database_pool_size", "4").unwrap();
        raw.set("workers", "1").unwrap();
        // Tests stand devices and webhook receivers up on loopback, which pulls and
        // webhooks do not reach by default: the default less loopback, unless a
        // test says otherwise.
        raw.set("outbound_deny", TEST_OUTBOUND_DENY).unwrap();
        raw.set("webhook_deny", "").unwrap();
        for (name, value) in settings {
            raw.set(name, *value).unwrap();
        }
        let config = raw.validate().expect("test configuration");
        let public_url_follows = !settings.iter().any(|(name, _)| *name == "public_url");
        Self::serve(backend, config, public_url_follows, database_url, data_dir, pg).await
    }

    /// Serves on a new loopback port; unless a test set `public_url`, the server's
    /// public URL is that port's, so the addresses it hands out (download URLs in
    /// offers, links) reach it.
    async fn serve(
        backend: Backend,
        mut config: patchwarden::config::Config,
        public_url_follows: bool,
        database_url: String,
        data_dir: TempDir,
        pg: Option<PgDatabase>,
    ) -> TestApp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        if public_url_follows {
            config.public_url = base.parse().expect("a loopback URL");
        }
        let state = web::Data::new(AppState::build(config.clone()).await.expect("app state"));
        let server = patchwarden::server::serve(state.clone(), listener).expect("server");
        actix_web::rt::spawn(server);
        let jobs = InstanceJobs::start(state.clone().into_inner());
        // A pooled connection idle for longer than the server keeps one open (5 s)
        // may be closed by the server just as the client sends on it; the client
        // lets connections go well before that.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .expect("client");
        TestApp {
            backend,
            config,
            public_url_follows,
            base,
            database_url,
            client,
            state,
            data_dir,
            _pg: pg,
            _jobs: jobs,
        }
    }

    /// A new server on the same database, data and keys, as after a restart.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            backend,
            config,
            public_url_follows,
            database_url,
            data_dir,
            _pg,
            ..
        } = self;
        Self::serve(backend, config, public_url_follows, database_url, data_dir, _pg).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs blocking database work for fixtures.
    pub async fn db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut patchwarden::db::DbConnection) -> Result<T, patchwarden::services::ServiceError>
            + Send
            + 'static,
    ) -> T {
        self.state.db.run(work).await.expect("fixture database work")
    }

    /// A user with `role` (and customer), and an API token for it.
    pub async fn with_user(&self, email: &str, role: &str, customer: Option<&str>) -> Actor {
        let draft = UserDraft::new(email, PASSWORD.into(), role, customer.map(str::to_owned)).expect("valid user");
        let (user, token) = self
            .db(move |conn| {
                let user = accounts::create_user(conn, &draft)?;
                let (_, issued) = accounts::issue_token(conn, &user, "fixture", None)?;
                Ok((user, issued.plaintext().to_owned()))
            })
            .await;
        Actor {
            email: user.email,
            password: PASSWORD.into(),
            token,
            user_id: user.id.to_string(),
        }
    }

    pub async fn with_vendor_admin(&self) -> Actor {
        self.with_user("admin@vendor.example", "vendor-admin", None).await
    }

    pub async fn with_publisher(&self) -> Actor {
        self.with_user("publisher@vendor.example", "vendor-publisher", None)
            .await
    }

    /// A customer `slug` with an admin `admin@<slug>.example`.
    pub async fn with_customer(&self, slug: &str) -> CustomerFixture {
        let (owned_slug, name) = (slug.to_owned(), format!("{slug} networks"));
        let customer = self
            .db(move |conn| accounts::create_customer(conn, &owned_slug, &name))
            .await;
        let admin = self
            .with_user(&format!("admin@{slug}.example"), "customer-admin", Some(slug))
            .await;
        CustomerFixture {
            slug: slug.to_owned(),
            id: customer.id.to_string(),
            admin,
        }
    }

    /// One bearer-authenticated request with an optional JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.client.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        status_and_json(request.send().await.expect("request")).await
    }

    /// A page fetched with a session cookie: status and HTML.
    pub async fn page(&self, session: &str, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(self.url(path))
            .header("cookie", session)
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.expect("body"))
    }

    /// A form posted with a session cookie: status, `Location` and HTML.
    pub async fn post_form<T: serde::Serialize + ?Sized>(
        &self,
        session: &str,
        path: &str,
        fields: &T,
    ) -> (u16, String, String) {
        let response = self
            .client
            .post(self.url(path))
            .header("cookie", session)
            .form(fields)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, location, response.text().await.expect("body"))
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, token, Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PATCH, path, token, Some(body)).await
    }

    /// A public GET: status and body text.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.client.get(self.url(path)).send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// A GET with `token` as the bearer (none when empty): status and body bytes.
    pub async fn get_bytes(&self, path: &str, token: &str) -> (u16, Vec<u8>) {
        let mut request = self.client.get(self.url(path));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }

    /// Appends `count` image registrations to the log (each in its own
    /// transaction, as events do), numbered from `from`.
    pub async fn append_images(&self, from: usize, count: usize) {
        use patchwarden::domain::event::{Actor, Event};
        self.db(move |conn| {
            for i in from..from + count {
                conn.write_transaction(|conn| {
                    let event = Event::ImageRegistered {
                        product: "test".into(),
                        sha256: format!("{i:064x}"),
                        version: "1".into(),
                        platform: String::new(),
                    };
                    patchwarden::services::log::append(conn, &event, &Actor::Cli)
                })?;
            }
            Ok(())
        })
        .await;
    }

    /// The instance's `refusals_total` for `reason` and `limit` (0 before the first).
    pub async fn refusals(&self, reason: &str, limit: &str) -> u64 {
        let (status, metrics) = self.get_text("/metrics").await;
        assert_eq!(status, 200, "[{}] /metrics: {metrics}", self.backend.name());
        let labels = format!("reason=\"{reason}\"");
        let limited = format!("limit=\"{limit}\"");
        metrics
            .lines()
            .find(|l| l.starts_with("patchwarden_refusals_total{") && l.contains(&labels) && l.contains(&limited))
            .map(|l| {
                let value = l.rsplit(' ').next().unwrap_or_default();
                value.parse().unwrap_or_else(|_| panic!("a count in {l:?}"))
            })
            .unwrap_or(0)
    }

    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, token, None).await
    }
}

/// The status and the JSON body (`null` when the body is empty or not JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

/// The `Set-Cookie` header that sets `name`, if any.
pub fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The value part of a `Set-Cookie` header.
pub fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map_or("", |(_, v)| v)
}

/// The value of the hidden `csrf_token` field in an HTML page.
pub fn csrf_field(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("csrf field") + marker.len();
    let end = html[start..].find('"').expect("end of csrf field") + start;
    html[start..end].to_owned()
}

/// Asserts the contract's error shape and returns the error code.
pub fn error_code(body: &Value) -> &str {
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {body}"));
    assert!(body["error"]["message"].is_string(), "error without message: {body}");
    code
}

/// Checks CSAF documents with the CSAF 2.0 schema and mandatory tests (section 6.1)
/// through `tests/csaf/validate.mjs`. Without the validator installed it prints a
/// notice and returns, unless `PATCHWARDEN_REQUIRE_CSAF_VALIDATOR` is set (as CI does).
pub fn assert_csaf_valid(documents: &[Value]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/csaf");
    if !dir.join("node_modules/@secvisogram/csaf-validator-lib").is_dir() {
        assert!(
            std::env::var_os("PATCHWARDEN_REQUIRE_CSAF_VALIDATOR").is_none(),
            "PATCHWARDEN_REQUIRE_CSAF_VALIDATOR is set but the validator is not installed (npm ci --prefix tests/csaf)"
        );
        eprintln!(
            "notice: CSAF validator not installed (npm ci --prefix tests/csaf); {} document(s) not validated",
            documents.len()
        );
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let files: Vec<String> = documents
        .iter()
        .enumerate()
        .map(|(i, doc)| {
            let path = out.path().join(format!("doc-{i}.json"));
            std::fs::write(&path, serde_json::to_vec(doc).unwrap()).unwrap();
            path.to_string_lossy().into_owned()
        })
        .collect();
    let output = std::process::Command::new("node")
        .current_dir(&dir)
        .arg("validate.mjs")
        .args(&files)
        .output()
        .expect("run node");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "CSAF validation failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains(&format!("{} valid, 0 invalid", documents.len())),
        "{report}"
    );
}

/// Verifies `signature` over `data` with `public_key`: always in process with the
/// `minisign` crate, and also with Debian's `minisign -Vm` when it is installed (it
/// must be when `PATCHWARDEN_REQUIRE_MINISIGN` is set, as in CI); the two must agree.
/// Returns whether the signature holds, and what the verifiers said.
pub fn minisign_verifies(data: &[u8], signature: &str, public_key: &str) -> (bool, String) {
    let in_process = patchwarden::signing::verify(public_key, std::io::Cursor::new(data), signature);
    let mut said = match &in_process {
        Ok(verified) => format!("in process: verified, trusted comment: {}\n", verified.trusted_comment),
        Err(err) => format!("in process: {err}\n"),
    };
    let tool = ["/usr/bin/minisign", "/usr/local/bin/minisign"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file());
    match tool {
        Some(tool) => {
            let (ok, text) = minisign_tool(tool, data, signature, public_key);
            assert_eq!(
                ok,
                in_process.is_ok(),
                "the minisign tool and the minisign crate disagree: {text} / {said}"
            );
            said.push_str(&text);
        }
        None => {
            assert!(
                std::env::var_os("PATCHWARDEN_REQUIRE_MINISIGN").is_none(),
                "PATCHWARDEN_REQUIRE_MINISIGN is set but the minisign tool is not installed"
            );
            eprintln!("notice: the minisign tool is not installed; verified in process only");
        }
    }
    (in_process.is_ok(), said)
}

fn minisign_tool(tool: &str, data: &[u8], signature: &str, public_key: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("document");
    std::fs::write(&file, data).unwrap();
    std::fs::write(dir.path().join("document.minisig"), signature).unwrap();
    std::fs::write(dir.path().join("key.pub"), public_key).unwrap();
    let output = std::process::Command::new(tool)
        .arg("-Vm")
        .arg(&file)
        .arg("-p")
        .arg(dir.path().join("key.pub"))
        .output()
        .expect("run minisign");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Signs in through the form; returns the `Cookie` header value for the session.
pub async fn sign_in(app: &TestApp, actor: &Actor) -> String {
    let page = app.client.get(app.url("/login")).send().await.unwrap();
    let login_cookie = set_cookie(page.headers(), "pw_login_csrf").unwrap().to_owned();
    let csrf = csrf_field(&page.text().await.unwrap());
    let response = app
        .client
        .post(app.url("/login"))
        .header("cookie", format!("pw_login_csrf={}", cookie_value(&login_cookie)))
        .form(&[
            ("email", actor.email.as_str()),
            ("password", actor.password.as_str()),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let session = set_cookie(response.headers(), "pw_session").unwrap();
    format!("pw_session={}", cookie_value(session))
}

/// An S3-compatible server (moto) on a loopback port, with one bucket, for the
/// storage tests; stopped when dropped.
pub struct S3Server {
    child: std::process::Child,
    pub endpoint: String,
    pub bucket: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts `moto_server`, which the S3 tests need (they are ignored by default and
    /// fail when run without it).
    pub async fn start() -> S3Server {
        let found = std::process::Command::new("moto_server")
            .arg("--help")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(found, "moto_server is not installed (pip install 'moto[server]')");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start moto_server");
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: format!("patches-{}", uuid_simple()),
        };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(response) = client
                .put(format!("{}/{}", server.endpoint, server.bucket))
                .send()
                .await
            {
                assert!(
                    response.status().is_success(),
                    "creating the bucket: {}",
                    response.status()
                );
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "moto_server did not start in 60 s"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The settings that point patchwarden at this server.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("s3_bucket", self.bucket.clone()),
            ("s3_endpoint", self.endpoint.clone()),
            ("s3_access_key_id", "testing".into()),
            ("s3_secret_access_key", "testing".into()),
        ]
    }
}

/// Checks a delivery's signature with the webhook's secret, as a receiver does.
pub fn verify_webhook(secret: &str, request: &endpoint::Request) -> Value {
    let id = &request.headers["webhook-id"];
    let timestamp = &request.headers["webhook-timestamp"];
    let signature = request.headers["webhook-signature"]
        .strip_prefix("v1,")
        .expect("a v1 signature");
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(signature, expected, "the signature does not verify");
    let sent: i64 = timestamp.parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - sent).abs() < 300, "a stale timestamp");
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["id"].as_str(), Some(id.as_str()), "the body's id is the header's");
    body
}
