//! The command line as an operator uses it: bootstrap a user and a token from a
//! shell, serve, and authenticate with that token; and a wrong configuration that
//! stops the start with a message naming the setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::process::{bootstrap_vendor, patchwarden, run, text, wait_healthy, Server};
use support::{backends, database_for};

#[actix_web::test]
async fn bootstrap_from_a_shell_then_the_token_authenticates() {
    for backend in backends() {
        support::on_backend(backend);
        eprintln!("-- backend: {backend:?}");
        let dir = tempfile::tempdir().unwrap();
        let (database_url, _pg) = database_for(backend, &dir);
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let bind = format!("127.0.0.1:{port}");
        let env = [
            ("PATCHWARDEN_DATABASE_URL", database_url.as_str()),
            ("PATCHWARDEN_BIND", bind.as_str()),
        ];

        let out = run(
            patchwarden(dir.path(), &env).args(["customer", "add", "--slug", "acme", "--name", "Acme"]),
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));

        let out = run(
            patchwarden(dir.path(), &env).args([
                "user",
                "add",
                "--email",
                "ops@acme.example",
                "--role",
                "customer-admin",
                "--customer",
                "acme",
                "--password-stdin",
            ]),
            Some("a long and good password\n"),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(!text(&out.stdout).contains("a long and good password"));

        let out = run(
            patchwarden(dir.path(), &env).args([
                "token",
                "create",
                "--email",
                "ops@acme.example",
                "--label",
                "laptop",
                "--expires-in",
                "30d",
            ]),
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let token = text(&out.stdout).trim().to_owned();
        assert!(token.starts_with("pwt_"), "stdout should be the token alone: {token}");

        let mut server = Server(
            patchwarden(dir.path(), &env)
                .arg("serve")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let client = reqwest::Client::new();
        let base = format!("http://{bind}");
        wait_healthy(&client, &base, &mut server).await;
        let response = client
            .get(format!("{base}/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let me: serde_json::Value = response.json().await.unwrap();
        assert_eq!(me["email"], "ops@acme.example");
        assert_eq!(me["role"], "customer-admin");
        assert_eq!(me["customer"], "acme");

        let id_line = text(&run(patchwarden(dir.path(), &env).args(["customer", "list"]), None).stdout);
        assert!(id_line.starts_with("acme\t"), "{id_line}");
        drop(server);
        let out = run(patchwarden(dir.path(), &env).arg("migrate"), None);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

#[actix_web::test]
async fn the_server_log_never_holds_a_token_or_password() {
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bind = format!("127.0.0.1:{port}");
    let env = [("PATCHWARDEN_BIND", bind.as_str()), ("PATCHWARDEN_LOG_LEVEL", "debug")];
    let token = bootstrap_vendor(dir.path(), &env, "a@vendor.example", "the secret password");

    let log = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let mut server = Server(
        patchwarden(dir.path(), &env)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::new();
    let base = format!("http://{bind}");
    wait_healthy(&client, &base, &mut server).await;
    client
        .get(format!("{base}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/api/v1/me?token={token}"))
        .bearer_auth("pwt_wrong")
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"email": "a@vendor.example", "password": "the secret password"}))
        .send()
        .await
        .unwrap();
    client
        .post(format!("{base}/api/v1/session"))
        .json(&serde_json::json!({"email": "a@vendor.example", "password": "a wrong password"}))
        .send()
        .await
        .unwrap();
    let healthy = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    drop(server);
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(
        written.contains("signed in"),
        "the log is empty or not at debug: {written}"
    );
    let secret = token.rsplit('_').next().unwrap();
    for needle in [secret, "the secret password", "a wrong password"] {
        assert!(!written.contains(needle), "the log holds `{needle}`");
    }
}

#[test]
fn invalid_configuration_stops_the_start_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("patchwarden.toml");

    std::fs::write(&config, "bind = \"127.0.0.1:0\"\ndatabse_url = \"x.db\"\n").unwrap();
    let out = run(
        patchwarden(dir.path(), &[]).args(["--config", config.to_str().unwrap(), "serve"]),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`databse_url`") && err.contains("unknown setting"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");

    let out = run(
        patchwarden(dir.path(), &[("PATCHWARDEN_DATABASE_URL", "mysql://db/pw")]).arg("serve"),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("`database_url`") && err.contains("PATCHWARDEN_DATABASE_URL"),
        "{err}"
    );

    let out = run(
        patchwarden(dir.path(), &[("PATCHWARDEN_BIND", "localhost")]).arg("serve"),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("`bind`"));

    let missing = dir.path().join("absent.toml");
    let out = run(
        patchwarden(dir.path(), &[]).args(["--config", missing.to_str().unwrap(), "serve"]),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("absent.toml") && err.contains("cannot read"), "{err}");

    assert!(
        !dir.path().join("data").exists(),
        "a refused start must not create anything"
    );
}

#[test]
fn defaults_need_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(patchwarden(dir.path(), &[]).arg("migrate"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        dir.path().join("data/patchwarden.db").is_file(),
        "the embedded default is data/patchwarden.db"
    );
    let out = run(patchwarden(dir.path(), &[]).arg("migrate"), None);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("0 migration(s) applied"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn weak_passwords_and_missing_stdin_flag_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        patchwarden(dir.path(), &[]).args([
            "user",
            "add",
            "--email",
            "a@vendor.example",
            "--role",
            "vendor-admin",
            "--password-stdin",
        ]),
        Some("short\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("password must be at least 12 characters"),
        "{}",
        text(&out.stderr)
    );

    let out = run(
        patchwarden(dir.path(), &[]).args(["user", "add", "--email", "a@vendor.example", "--role", "vendor-admin"]),
        None,
    );
    assert_eq!(out.status.code(), Some(2), "clap refuses a missing --password-stdin");
}

/// Runs `serve` and waits (at most 60 s) for it to exit; returns its exit code and stderr.
fn serve_must_exit(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = patchwarden(dir, env)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running although it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keygen_protects_the_key_and_serve_needs_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let with_password = [
        ("PATCHWARDEN_KEY_PASSWORD", "a long key passphrase"),
        ("PATCHWARDEN_BIND", "127.0.0.1:0"),
    ];

    let out = run(patchwarden(dir.path(), &[]).arg("keygen"), None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("a password is required"),
        "{}",
        text(&out.stderr)
    );

    let out = run(patchwarden(dir.path(), &with_password).arg("keygen"), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("password-protected"));
    let secret = std::fs::read_to_string(dir.path().join("keys/patchwarden.key")).unwrap();
    assert!(secret.contains("(encrypted)"), "{secret}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("keys/patchwarden.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the secret key is readable by others: {mode:o}");
    }
    let public = std::fs::read_to_string(dir.path().join("keys/patchwarden.pub")).unwrap();
    assert!(public.starts_with("untrusted comment: minisign public key"), "{public}");

    let out = run(patchwarden(dir.path(), &with_password).arg("keygen"), None);
    assert_eq!(out.status.code(), Some(1), "keygen overwrote an existing key");
    assert!(text(&out.stderr).contains("already exists"));

    let (code, stderr) = serve_must_exit(dir.path(), &[("PATCHWARDEN_BIND", "127.0.0.1:0")]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("PATCHWARDEN_KEY_PASSWORD"), "{stderr}");
    let (code, stderr) = serve_must_exit(
        dir.path(),
        &[
            ("PATCHWARDEN_KEY_PASSWORD", "not the passphrase"),
            ("PATCHWARDEN_BIND", "127.0.0.1:0"),
        ],
    );
    assert_eq!(code, Some(1));
    assert!(stderr.to_lowercase().contains("wrong password"), "{stderr}");

    let out = run(
        patchwarden(dir.path(), &with_password).args(["keygen", "--rotate"]),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let retired: Vec<String> = std::fs::read_dir(dir.path().join("keys/retired"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(retired.len(), 1, "only the old public key is kept: {retired:?}");
    assert!(retired[0].ends_with(".pub"), "{retired:?}");
    let statements = std::fs::read_dir(dir.path().join("keys")).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("rotation-")
    });
    assert_eq!(statements.count(), 2, "a statement and its signature");
}

#[test]
fn verify_checks_a_file_and_prints_the_trusted_comment() {
    let dir = tempfile::tempdir().unwrap();
    let signer = patchwarden::signing::Signer::generate(&dir.path().join("keys"), None).unwrap();
    let file = dir.path().join("advisory.json");
    std::fs::write(&file, b"{\"id\":\"PW-2026-0001\"}").unwrap();
    let signature = signer
        .sign(
            b"{\"id\":\"PW-2026-0001\"}",
            "patchwarden advisory PW-2026-0001 revision 1",
        )
        .unwrap();
    std::fs::write(dir.path().join("advisory.json.minisig"), signature).unwrap();

    let out = run(
        patchwarden(dir.path(), &[]).args(["verify", "--file", "advisory.json"]),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Trusted comment: patchwarden advisory PW-2026-0001 revision 1"));

    std::fs::write(&file, b"{\"id\":\"PW-2026-0002\"}").unwrap();
    let out = run(
        patchwarden(dir.path(), &[]).args(["verify", "--file", "advisory.json", "--pubkey", "keys/patchwarden.pub"]),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("FAILED"), "{}", text(&out.stderr));
}

#[actix_web::test]
async fn patch_upload_creates_uploads_and_publishes_with_progress() {
    for app in support::TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        let product = serde_json::json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
        std::fs::write(dir.path().join("screenos-6.3.0r21.bin"), &bytes).unwrap();
        let env = [
            ("PATCHWARDEN_SERVER", app.base.as_str()),
            ("PATCHWARDEN_TOKEN", vendor.token.as_str()),
        ];
        let out = run(
            patchwarden(dir.path(), &env).args([
                "patch",
                "upload",
                "--product",
                "screenos",
                "--version",
                "6.3.0r21",
                "--applies-to",
                ">=6.3.0r12 <6.3.0r21",
                "--file",
                "screenos-6.3.0r21.bin",
                "--publish",
            ]),
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("100.0%"),
            "no progress shown: {}",
            text(&out.stderr)
        );
        let id = text(&out.stdout).trim().to_owned();
        let (_, meta) = app.get(&format!("/api/v1/patches/{id}"), &vendor.token).await;
        assert_eq!(meta["state"], "published");
        assert_eq!(meta["sha256"], patchwarden::secrets::sha256_hex(&bytes).as_str());
        assert!(!text(&out.stderr).contains(&vendor.token), "the token was printed");

        let out = run(
            patchwarden(dir.path(), &env).args([
                "patch",
                "upload",
                "--product",
                "junos",
                "--version",
                "1",
                "--file",
                "screenos-6.3.0r21.bin",
            ]),
            None,
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("there is no product `junos`"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        patchwarden(dir.path(), &[("PATCHWARDEN_LOG_FORMAT", "json")]).arg("migrate"),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stderr).lines().map(str::to_owned).collect();
    assert!(!lines.is_empty(), "migrate logged nothing");
    for line in lines {
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert_eq!(event["level"], "INFO", "{line}");
        assert!(event["message"].is_string(), "{line}");
    }
}

/// A TCP relay to `target` that cuts the connection carrying the request bytes past
/// `cut_after` once, as a flaky link would, and counts every byte sent upstream.
struct FlakyLink {
    addr: std::net::SocketAddr,
    upstream_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FlakyLink {
    fn start(target: std::net::SocketAddr, cut_after: u64) -> FlakyLink {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream_bytes = Arc::new(AtomicU64::new(0));
        let counter = upstream_bytes.clone();
        let cut = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = std::net::TcpStream::connect(target).unwrap();
                let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (counter, cut) = (counter.clone(), cut.clone());
                let (client_end, server_end) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buffer = vec![0u8; 64 * 1024];
                    while let Ok(read) = from_client.read(&mut buffer) {
                        if read == 0 || to_server.write_all(&buffer[..read]).is_err() {
                            break;
                        }
                        let total = counter.fetch_add(read as u64, Ordering::SeqCst) + read as u64;
                        if total > cut_after && !cut.swap(true, Ordering::SeqCst) {
                            break;
                        }
                    }
                    let _ = client_end.shutdown(std::net::Shutdown::Both);
                    let _ = server_end.shutdown(std::net::Shutdown::Both);
                });
                let (mut from_server, mut to_client) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        FlakyLink { addr, upstream_bytes }
    }
}

#[actix_web::test]
async fn patch_upload_resumes_where_the_server_stopped_when_the_link_drops() {
    for app in support::TestApp::each().await {
        let vendor = app.with_vendor_admin().await;
        let product = serde_json::json!({"slug": "screenos", "name": "ScreenOS", "version_scheme": "vendor"});
        assert_eq!(app.post("/api/v1/products", &vendor.token, product).await.0, 201);
        let dir = tempfile::tempdir().unwrap();
        let size: u64 = 6 * 1024 * 1024;
        let bytes: Vec<u8> = (0..size).map(|i| (i % 239) as u8).collect();
        std::fs::write(dir.path().join("screenos-6.3.0r21.bin"), &bytes).unwrap();
        let target = app.base.trim_start_matches("http://").parse().unwrap();
        let cut_after = 4 * 1024 * 1024;
        let link = FlakyLink::start(target, cut_after);
        let server = format!("http://{}", link.addr);
        let env = [
            ("PATCHWARDEN_SERVER", server.as_str()),
            ("PATCHWARDEN_TOKEN", vendor.token.as_str()),
        ];
        let out = run(
            patchwarden(dir.path(), &env).args([
                "patch",
                "upload",
                "--product",
                "screenos",
                "--version",
                "6.3.0r21",
                "--file",
                "screenos-6.3.0r21.bin",
            ]),
            None,
        );
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("attempt failed"), "the link never dropped: {stderr}");
        assert!(stderr.contains("resuming at byte"), "the upload started over: {stderr}");
        let id = text(&out.stdout).trim().to_owned();
        let (_, meta) = app.get(&format!("/api/v1/patches/{id}"), &vendor.token).await;
        assert_eq!(meta["sha256"], patchwarden::secrets::sha256_hex(&bytes).as_str());
        // Starting over would have sent the 4 MiB before the cut twice.
        let sent = link.upstream_bytes.load(std::sync::atomic::Ordering::SeqCst);
        assert!(
            sent < size + cut_after / 2,
            "{sent} bytes went upstream for a {size}-byte file"
        );

        // An unfinished upload of another file of the same size is not resumed.
        let draft = serde_json::json!({"product": "screenos", "version": "6.3.0r22", "filename": "other.bin"});
        let (_, other) = app.post("/api/v1/patches", &vendor.token, draft).await;
        let other = other["id"].as_str().unwrap().to_owned();
        let foreign: Vec<u8> = bytes.iter().map(|b| b ^ 0x5a).collect();
        let upload_path = format!("/api/v1/patches/{other}/upload");
        let declared = serde_json::json!({"size": size, "sha256": patchwarden::secrets::sha256_hex(&foreign)});
        assert_eq!(app.post(&upload_path, &vendor.token, declared).await.0, 201);
        let response = app
            .client
            .patch(app.url(&upload_path))
            .bearer_auth(&vendor.token)
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(foreign[..1024 * 1024].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let out = run(
            patchwarden(dir.path(), &env).args([
                "patch",
                "upload",
                "--patch",
                &other,
                "--file",
                "screenos-6.3.0r21.bin",
            ]),
            None,
        );
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            !stderr.contains("resuming"),
            "another file's upload was resumed: {stderr}"
        );
        let (_, meta) = app.get(&format!("/api/v1/patches/{other}"), &vendor.token).await;
        assert_eq!(meta["sha256"], patchwarden::secrets::sha256_hex(&bytes).as_str());

        // Run again for the same draft: the server already holds the file.
        let out = run(
            patchwarden(dir.path(), &env).args(["patch", "upload", "--patch", &id, "--file", "screenos-6.3.0r21.bin"]),
            None,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("already holds this file"),
            "{}",
            text(&out.stderr)
        );
    }
}

#[test]
fn verify_says_whether_the_signature_or_the_signed_hash_failed() {
    let dir = tempfile::tempdir().unwrap();
    let signer = patchwarden::signing::Signer::generate(&dir.path().join("keys"), None).unwrap();
    let bytes = b"firmware image".to_vec();
    let sha256 = patchwarden::secrets::sha256_hex(&bytes);
    std::fs::write(dir.path().join("fix.bin"), &bytes).unwrap();
    let verify = || {
        run(
            patchwarden(dir.path(), &[]).args(["verify", "--file", "fix.bin", "--pubkey", "keys/patchwarden.pub"]),
            None,
        )
    };

    // A genuine signature whose trusted comment names this file's hash.
    let good = signer
        .sign(
            &bytes,
            &format!("patchwarden patch id=x product=p version=1 sha256={sha256} advisories=none"),
        )
        .unwrap();
    std::fs::write(dir.path().join("fix.bin.minisig"), &good).unwrap();
    let out = verify();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("SHA-256 matches the trusted comment: {sha256}")));

    // A genuine signature over these bytes whose comment names another file.
    let other = "0".repeat(64);
    let misbound = signer
        .sign(
            &bytes,
            &format!("patchwarden patch id=x product=p version=1 sha256={other} advisories=none"),
        )
        .unwrap();
    std::fs::write(dir.path().join("fix.bin.minisig"), &misbound).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("Signature and comment signature verified"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("SHA-256 check FAILED") && stderr.contains(&other),
        "{stderr}"
    );

    // Other bytes under the genuine signature: the signature check is what fails.
    std::fs::write(dir.path().join("fix.bin.minisig"), &good).unwrap();
    std::fs::write(dir.path().join("fix.bin"), b"firmware imagE").unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("signature check FAILED"),
        "{}",
        text(&out.stderr)
    );
}

#[actix_web::test]
async fn device_import_enrols_a_fleet_all_or_none_and_the_server_picks_it_up() {
    use support::patching::fixture;
    use support::TestApp;
    for app in TestApp::each().await {
        let f = fixture(&app).await;
        let dir = tempfile::tempdir().unwrap();
        // The server's keys: pull tokens are sealed with its sealing key, which the
        // database holds the command line to.
        let keys_dir = app.data_dir.path().join("keys").to_string_lossy().into_owned();
        let env = [
            ("PATCHWARDEN_DATABASE_URL", app.database_url.as_str()),
            ("PATCHWARDEN_KEYS_DIR", keys_dir.as_str()),
        ];
        let lines: String = (0..50)
            .map(|n| {
                format!(
                    "{}\n",
                    serde_json::json!({"name": format!("fw-{n:03}"), "product": "screenos", "platform": "ssg-500",
                                       "version": "6.3.0r20", "labels": {"site": "berlin"}})
                )
            })
            .collect();
        let broken = format!(
            "{lines}{}\n",
            serde_json::json!({"name": "fw-bad", "product": "screenos", "version": "nope!"})
        );
        // Without the server's sealing key the import refuses, rather than sealing
        // pull tokens with a key of its own that the server could not open.
        let keyless = [("PATCHWARDEN_DATABASE_URL", app.database_url.as_str())];
        let out = run(
            patchwarden(dir.path(), &keyless).args(["device", "import", "--customer", "acme", "--file", "-"]),
            Some(&lines),
        );
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("does not exist"), "{}", text(&out.stderr));

        let out = run(
            patchwarden(dir.path(), &env).args(["device", "import", "--customer", "acme", "--file", "-"]),
            Some(&broken),
        );
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("line 51"), "{}", text(&out.stderr));
        let (_, listed) = app.get("/api/v1/devices", &f.acme.admin.token).await;
        assert_eq!(listed["total"], 0, "nothing of a refused import is kept");

        let out = run(
            patchwarden(dir.path(), &env).args(["device", "import", "--customer", "acme", "--file", "-"]),
            Some(&lines),
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        let enrolled: Vec<serde_json::Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(enrolled.len(), 50);
        let token = enrolled[49]["token"].as_str().unwrap();
        // The running server learns the new devices through the change counter.
        let started = Instant::now();
        loop {
            let (status, body) = app
                .post("/api/v1/device/poll", token, serde_json::json!({"version": "6.3.0r20"}))
                .await;
            if status == 200 {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1), "{status} {body}");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, listed) = app
            .get("/api/v1/devices?label=site%3Dberlin", &f.acme.admin.token)
            .await;
        assert_eq!(listed["total"], 50);
    }
}

#[actix_web::test]
async fn release_images_are_registered_and_listed_from_the_shell() {
    use support::patching::fixture;
    use support::TestApp;
    for app in TestApp::each().await {
        let backend = app.backend.name();
        let f = fixture(&app).await;
        let dir = tempfile::tempdir().unwrap();
        let data_dir = app.data_dir.path().to_string_lossy().into_owned();
        let keys_dir = app.data_dir.path().join("keys").to_string_lossy().into_owned();
        let env = [
            ("PATCHWARDEN_DATABASE_URL", app.database_url.as_str()),
            ("PATCHWARDEN_DATA_DIR", data_dir.as_str()),
            ("PATCHWARDEN_KEYS_DIR", keys_dir.as_str()),
        ];
        let sha = "C0FFEE".repeat(10) + "C0DE";
        let add = |sha: &str| {
            run(
                patchwarden(dir.path(), &env).args([
                    "image",
                    "add",
                    "--product",
                    "screenos",
                    "--version",
                    "6.3.0r21",
                    "--sha256",
                    sha,
                ]),
                None,
            )
        };
        let out = add(&sha);
        assert!(out.status.success(), "[{backend}] {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("registered 6.3.0r21"),
            "[{backend}] {}",
            text(&out.stdout)
        );
        let again = add(&sha);
        assert!(text(&again.stdout).starts_with("already registered"), "[{backend}]");
        let bad = add("not-a-hash");
        assert!(!bad.status.success());
        assert!(
            text(&bad.stderr).contains("image_sha256 must be 64 hex digits"),
            "[{backend}] {}",
            text(&bad.stderr)
        );

        let out = run(
            patchwarden(dir.path(), &env).args(["image", "list", "--product", "screenos"]),
            None,
        );
        assert_eq!(text(&out.stdout).lines().count(), 1, "[{backend}]");
        let (_, listed) = app.get("/api/v1/products/screenos/images", &f.vendor.token).await;
        assert_eq!(
            listed["images"][0]["image_sha256"],
            sha.to_lowercase(),
            "[{backend}] {listed}"
        );
        assert_eq!(listed["images"][0]["version"], "6.3.0r21");
        assert!(listed["images"][0]["platform"].is_null());
    }
}
