//! Running the `patchwarden` binary as an operator would: commands with a clean
//! environment, and a server process that is killed when dropped.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_patchwarden");

/// The binary with a clean environment and the given settings.
pub fn patchwarden(dir: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

pub fn run(command: &mut Command, stdin: Option<&str>) -> Output {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn patchwarden");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `/healthz` until it answers 200, for at most 30 s.
pub async fn wait_healthy(client: &reqwest::Client, base: &str, server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("the server exited early with {status}");
        }
        assert!(Instant::now() < deadline, "the server did not become healthy in 30 s");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a vendor-admin `email` with `password` from the shell and returns a new API
/// token for it, as an operator bootstraps a server.
pub fn bootstrap_vendor(dir: &Path, env: &[(&str, &str)], email: &str, password: &str) -> String {
    bootstrap_user(dir, env, email, password, &["--role", "vendor-admin"])
}

/// Creates customer `slug` and its admin `email` with `password` from the shell and
/// returns a new API token for the admin.
pub fn bootstrap_customer_admin(dir: &Path, env: &[(&str, &str)], slug: &str, email: &str, password: &str) -> String {
    let out = run(
        patchwarden(dir, env).args(["customer", "add", "--slug", slug, "--name", slug]),
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    bootstrap_user(
        dir,
        env,
        email,
        password,
        &["--role", "customer-admin", "--customer", slug],
    )
}

/// `patchwarden user add` of `email` with `password` and `role` (its flags), then a
/// token for it.
fn bootstrap_user(dir: &Path, env: &[(&str, &str)], email: &str, password: &str, role: &[&str]) -> String {
    let out = run(
        patchwarden(dir, env)
            .args(["user", "add", "--email", email])
            .args(role)
            .arg("--password-stdin"),
        Some(&format!("{password}\n")),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(patchwarden(dir, env).args(["token", "create", "--email", email]), None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}
