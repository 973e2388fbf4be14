//! `patchwarden demo`: a living demonstration on a fresh SQLite database of its own.
//! It seeds a vendor, two customers, the ScreenOS emergency advisory and its
//! revision, fixed patches and release images, starts the server with its jobs and
//! a simulated fleet that polls, installs and answers pulls, and prints the URL and
//! the logins, then one short progress line every few seconds; the server's own log
//! goes to `server.log` in the demo's directory. Everything is done through the
//! public API, as a vendor and its customers would; only the first accounts come
//! from the command line's services.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use patchwarden::client::agent::simulate::{self, FleetSpec, Mix};
use patchwarden::client::agent::{
    stop_signal, AgentConfig, AgentLimits, Identity, Installer, SimulatedInstall, SimulatedOutcome,
};
use patchwarden::config::{Config, RawSettings};
use patchwarden::db::models::User;
use patchwarden::domain::version::VersionScheme;
use patchwarden::domain::Scope;
use patchwarden::jobs;
use patchwarden::server;
use patchwarden::services::accounts::{self, UserDraft};
use patchwarden::services::fleet::exposure::{self, ExposureQuery};
use patchwarden::state::AppState;

/// The fleet's starting versions: most on the 6.3.0 train around the backdoor,
/// some on 6.2.0, a few already fixed or older than the flaw.
const VERSIONS: [&str; 8] = [
    "6.3.0r19", "6.3.0r20", "6.3.0r20", "6.3.0r18", "6.2.0r17", "6.3.0r21", "6.2.0r18", "6.3.0r10",
];
/// How the simulated devices behave.
const MIX: &str = "honest=84,slow=6,fails_install=3,claims_only=3,silent=2,unknown_image=2";

pub struct DemoOptions {
    pub dir: PathBuf,
    pub devices: usize,
}

/// A login the demo prints.
struct Login {
    email: String,
    password: String,
    role: &'static str,
}

fn password() -> String {
    hex::encode(patchwarden::random::bytes::<12>())
}

/// The demo's settings: its own directory, the bind address asked for, intervals
/// short enough to watch.
fn settings(dir: &Path, bind: &str) -> anyhow::Result<RawSettings> {
    let mut raw = RawSettings::default();
    let path = |p: PathBuf| p.to_string_lossy().into_owned();
    raw.set("data_dir", path(dir.to_owned()))?;
    raw.set("keys_dir", path(dir.join("keys")))?;
    raw.set("bind", bind)?;
    raw.set("poll_interval", "20s")?;
    raw.set("emergency_poll_interval", "10s")?;
    raw.set("exposure_point_interval", "10s")?;
    raw.set("install_stall_after", "60s")?;
    raw.set("unreachable_after", "30s")?;
    raw.set("enrollment_attempts_per_minute", "100000")?;
    // The simulated devices answer pulls on loopback, which pulls do not reach by
    // default: the demo's own machine is its whole network.
    raw.set("outbound_deny", patchwarden::domain::network::DEFAULT_DENY_BUT_LOOPBACK)?;
    Ok(raw)
}

pub fn run(config: &Config, options: DemoOptions) -> anyhow::Result<()> {
    if options.devices < 2 {
        bail!("--devices must be at least 2, one for each customer");
    }
    if options.dir.exists() {
        let marker = options.dir.join("DEMO");
        if !marker.exists() {
            bail!(
                "{} exists and is not a demo directory; choose another with --dir",
                options.dir.display()
            );
        }
        std::fs::remove_dir_all(&options.dir)
            .with_context(|| format!("removing the old demo in {}", options.dir.display()))?;
    }
    std::fs::create_dir_all(&options.dir).with_context(|| format!("creating {}", options.dir.display()))?;
    std::fs::write(
        options.dir.join("DEMO"),
        "made by `patchwarden demo`; removed by the next one\n",
    )?;
    let log_path = options.dir.join("server.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    patchwarden::telemetry::init_file(config.log_format, &config.log_level, log);
    let listener =
        TcpListener::bind(config.bind).with_context(|| format!("listening on {} (setting `bind`)", config.bind))?;
    let address = listener.local_addr()?;
    let mut raw = settings(&options.dir, &address.to_string())?;
    raw.set("public_url", format!("http://{address}"))?;
    let config = raw.validate()?;
    actix_web::rt::System::new().block_on(async move {
        let state = actix_web::web::Data::new(AppState::build(config).await?);
        let _runner = jobs::start(state.clone().into_inner(), true);
        let server = server::serve(state.clone(), listener)?;
        let base = format!("http://{address}");
        let serving = actix_web::rt::spawn(server);
        let (logins, fleets, advisory) = seed(&state, &base, &options).await?;
        // The banner is written whole, and a reader that stops reading (`| head`)
        // does not stop the demo.
        let mut banner = format!("\npatchwarden demo: open {base}/\n\n");
        for login in &logins {
            banner += &format!("  {:<16} {:<28} password {}\n", login.role, login.email, login.password);
        }
        banner += &format!(
            "\n{} simulated devices enrol over the next 20 s, poll, install the fix and answer pulls;\n\
             the dashboard fills within a minute or two. The server's log: {}\n\
             Ctrl-C stops the demo.\n\n",
            options.devices,
            log_path.display()
        );
        say(&banner);
        let started = std::time::Instant::now();
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        let stop = stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let line = progress(&state, &fleets, &advisory, started.elapsed()).await;
                    say(&format!("{line}\n"));
                }
                () = &mut stop => break,
            }
        }
        drop(fleets);
        serving.abort();
        say(&format!(
            "\npatchwarden demo stopped; the server's log is in {}\n",
            log_path.display()
        ));
        Ok(())
    })
}

/// How often the demo prints a progress line.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Writes `text` to standard output whole; a closed output does not stop the demo.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// One line of progress: devices enrolled, and where the fleet stands against the
/// emergency as the server counts it.
async fn progress(state: &AppState, fleets: &[simulate::Fleet], advisory: &str, elapsed: Duration) -> String {
    let enrolled: u64 = fleets.iter().map(|f| f.snapshot().enrolled).sum();
    let failed: u64 = fleets.iter().map(|f| f.snapshot().install_failed).sum();
    let query = ExposureQuery {
        per_page: 0,
        ..ExposureQuery::default()
    };
    let counts = exposure::exposure(state, &Scope::Vendor, advisory.to_owned(), query).await;
    let secs = elapsed.as_secs();
    match counts {
        Ok(found) => format!(
            "[{:02}:{:02}] {enrolled} devices enrolled · {} fixed · {} still affected · {} installs failed",
            secs / 60,
            secs % 60,
            found.counts.fixed,
            found.counts.affected,
            failed
        ),
        Err(err) => format!(
            "[{:02}:{:02}] {enrolled} devices enrolled · counts unavailable: {err}",
            secs / 60,
            secs % 60
        ),
    }
}

/// A client of the demo's own API with one bearer token.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, token, Some(body)).await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PUT, path, token, Some(body)).await
    }

    async fn upload(&self, patch: &str, token: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        let path = format!("/api/v1/patches/{patch}/file");
        let response = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("PUT {path} answered {}", response.status());
        }
        Ok(())
    }
}

/// Bytes that stand in for a firmware image of `version`.
fn firmware(version: &str, len: usize) -> Vec<u8> {
    let seed: u32 = version
        .bytes()
        .fold(7, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) ^ seed ^ (i >> 7)) as u8)
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

async fn seed(
    state: &AppState,
    base: &str,
    options: &DemoOptions,
) -> anyhow::Result<(Vec<Login>, Vec<simulate::Fleet>, String)> {
    let api = Api {
        http: reqwest::Client::new(),
        base: base.to_owned(),
    };
    // The first accounts, as `patchwarden customer add` and `user add` make them.
    let people = [
        ("vendor@screenos.example", "vendor-admin", None),
        ("admin@acme.example", "customer-admin", Some("acme")),
        ("admin@globex.example", "customer-admin", Some("globex")),
    ];
    let made = state
        .db
        .run(move |conn| {
            accounts::create_customer(conn, "acme", "Acme Networks")?;
            accounts::create_customer(conn, "globex", "Globex Corporation")?;
            let mut made = Vec::new();
            for (email, role, customer) in people {
                let secret = password();
                let draft = UserDraft::new(email, secret.clone(), role, customer.map(str::to_owned))?;
                let user: User = accounts::create_user(conn, &draft)?;
                let (_, token) = accounts::issue_token(conn, &user, "demo", None)?;
                made.push((email, role, secret, token.plaintext().to_owned()));
            }
            Ok::<_, patchwarden::services::ServiceError>(made)
        })
        .await?;
    let logins: Vec<Login> = made
        .iter()
        .map(|(email, role, password, _)| Login {
            email: (*email).to_owned(),
            password: password.clone(),
            role,
        })
        .collect();
    let (vendor, acme, globex) = (&made[0].3, &made[1].3, &made[2].3);

    api.post(
        "/api/v1/products",
        vendor,
        json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"}),
    )
    .await?;
    for customer in ["acme", "globex"] {
        api.put(
            &format!("/api/v1/customers/{customer}/entitlements"),
            vendor,
            json!({"products": ["screenos"]}),
        )
        .await?;
    }
    let deadline = (chrono::Utc::now() + chrono::TimeDelta::days(3))
        .format("%Y-%m-%dT00:00:00Z")
        .to_string();
    let mut advisory = json!({
        "title": "Unauthorized code in ScreenOS allows administrative access and VPN decryption",
        "summary": "An internal code review found unauthorized code in ScreenOS. It lets a remote attacker \
                    log in to an affected device over SSH or telnet with administrative rights, and lets a \
                    passive attacker who monitors VPN traffic decrypt it. Log entries of such a login could \
                    be removed by the attacker, so their absence proves nothing.",
        "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H",
        "cves": ["CVE-2015-7755"], "cwes": ["CWE-798"],
        "emergency": true, "known_exploited": true, "fix_deadline": deadline,
        "affected": [{"product": "screenos", "ranges": [
            {"introduced": "6.2.0r15", "fixed": "6.2.0r19"},
            {"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}],
        "workarounds": "None. Restrict management access to trusted networks until the fix is installed.",
        "references": ["https://nvd.nist.gov/vuln/detail/CVE-2015-7755"],
        "acknowledgements": "Found in an internal code review."
    });
    let draft = api.post("/api/v1/advisories", vendor, advisory.clone()).await?;
    let id = draft["id"].as_str().context("the draft has no id")?.to_owned();
    let published = api
        .post(
            &format!("/api/v1/advisories/{id}/publish"),
            vendor,
            json!({"change_summary": "Initial publication"}),
        )
        .await?;
    let public_id = published["id"]
        .as_str()
        .context("the advisory has no public id")?
        .to_owned();
    advisory["cves"] = json!(["CVE-2015-7755", "CVE-2015-7756"]);
    advisory["change_summary"] =
        json!("Added CVE-2015-7756: the VPN decryption is a separate flaw with its own identifier.");
    api.post(&format!("/api/v1/advisories/{id}/revisions"), vendor, advisory)
        .await?;

    let mut images = Vec::new();
    for (version, introduced) in [("6.3.0r21", "6.3.0r12"), ("6.2.0r19", "6.2.0r15")] {
        let bytes = firmware(version, 2 * 1024 * 1024);
        images.push((version.to_owned(), sha256_hex(&bytes)));
        let patch = api
            .post(
                "/api/v1/patches",
                vendor,
                json!({"product": "screenos", "version": version,
                       "applies_to": [{"introduced": introduced, "fixed": version}],
                       "fixes": [id], "filename": format!("screenos-{version}.bin")}),
            )
            .await?;
        let patch = patch["id"].as_str().context("the patch has no id")?.to_owned();
        api.upload(&patch, vendor, bytes).await?;
        api.post(&format!("/api/v1/patches/{patch}/publish"), vendor, json!({}))
            .await?;
    }
    for version in VERSIONS {
        images.push((version.to_owned(), simulate::release_image("screenos", version)));
    }
    images.sort();
    images.dedup();
    for (version, sha256) in images {
        api.post(
            "/api/v1/products/screenos/images",
            vendor,
            json!({"version": version, "image_sha256": sha256}),
        )
        .await?;
    }

    // Acme's devices are also pulled every 20 seconds.
    api.put("/api/v1/pull-schedule", acme, json!({"schedule": "*/20 * * * * *"}))
        .await?;
    let pinned = state.signer.public_key().text.clone();
    let acme_count = (options.devices * 2).div_ceil(3);
    let mut fleets = Vec::new();
    for (customer, token, count, pulled) in [
        ("acme", acme, acme_count, true),
        ("globex", globex, options.devices - acme_count, false),
    ] {
        let enrolment = api
            .post(
                "/api/v1/enrollment-tokens",
                token,
                json!({"max_uses": count.max(1), "label": "demo fleet"}),
            )
            .await?;
        let enrolment = enrolment["token"].as_str().context("no enrolment token")?.to_owned();
        let base_config = AgentConfig {
            server: base.parse()?,
            product: "screenos".into(),
            platform: Some("ssg-500".into()),
            name: format!("{customer}-fw"),
            version: VERSIONS[0].into(),
            image_sha256: None,
            image_file: None,
            identity: Identity::Enrol(enrolment),
            pinned_keys: vec![pinned.clone()],
            state_file: options.dir.join("agents").join(customer).join("state.json"),
            download_dir: options.dir.join("agents").join(customer).join("downloads"),
            installer: Installer::Simulated(SimulatedInstall {
                duration: Duration::from_secs(1),
                outcome: SimulatedOutcome::Succeeds,
                fails_only: Vec::new(),
            }),
            pull_listen: None,
            pull_url: None,
            pull_token: pulled.then(password),
            request_timeout: Duration::from_secs(30),
            version_scheme: VersionScheme::Vendor,
            witnesses: None,
            limits: AgentLimits::default(),
        };
        let spec = FleetSpec {
            base: base_config,
            count,
            versions: VERSIONS.iter().map(|v| (*v).to_owned()).collect(),
            mix: MIX.parse::<Mix>().map_err(anyhow::Error::msg)?,
            work_dir: options.dir.join("agents").join(customer),
            pull: pulled.then(|| (std::net::SocketAddr::from(([127, 0, 0, 1], 0)), None)),
            slow_install: Duration::from_secs(45),
            start_spread: Duration::from_secs(20),
            fails_only: Vec::new(),
        };
        fleets.push(simulate::start(spec).await?);
    }
    Ok((logins, fleets, public_id))
}
