//! `patchwarden witness` as a process, against the server's log on SQLite and
//! PostgreSQL: it cosigns the log as it grows (proofs from the server), refuses a
//! fork signed with the log's own key (the insider's attack), a stale `old`, a
//! stranger's key and an unknown log with the statuses C2SP `tlog-witness` names,
//! and, killed with SIGKILL around a cosignature and started again, never cosigns
//! a second root for a size it answered for. And the server as the witnesses'
//! client: under a policy of three witnesses and a quorum of two, it gathers their
//! cosignatures into the checkpoint it serves, keeps the quorum with one witness
//! down and says on the vendor's log page and in `/metrics` when two are. And the
//! air-gapped site: a patch, its signature and its C2SP tlog-proof installed by
//! `patchwarden-agent install` with no server or witness reachable, and refused
//! with any byte of the proof changed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use base64::Engine;
use patchwarden::client::agent::config::WitnessRequirement;
use patchwarden::client::agent::{Agent, OfflineOutcome};
use patchwarden::domain::note::{Note, NoteSignature, NoteSigner, VerifierKey, TYPE_ED25519};
use patchwarden::domain::policy::Policy;
use patchwarden::jobs::{run_once, Job};
use patchwarden::services::log;
use support::devices::{enrol, identity, screenos_agent, server_key};
use support::patching::{file_bytes, fixture, publish_patch};
use support::{backends, sign_in, TestApp};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A running `patchwarden witness`.
struct WitnessProcess {
    child: Child,
    url: String,
    key: VerifierKey,
}

impl WitnessProcess {
    fn start(dir: &Path, log_key: &str) -> WitnessProcess {
        Self::start_at(dir, log_key, "w1.example", "127.0.0.1:0")
    }

    fn start_at(dir: &Path, log_key: &str, name: &str, listen: &str) -> WitnessProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_patchwarden"))
            .args(["witness", "--listen", listen, "--name", name, "--log", log_key])
            .arg("--data")
            .arg(dir)
            .env("PATCHWARDEN_LOG_LEVEL", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let key = lines.next().expect("the witness prints its key").unwrap();
        let key = VerifierKey::parse(key.strip_prefix("witness ").unwrap()).unwrap();
        let url = lines.next().expect("the witness prints its address").unwrap();
        let url = url.strip_prefix("listening on ").unwrap().to_owned();
        WitnessProcess { child, url, key }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn add(&self, old: u64, proof: &[String], note: &str) -> (u16, String, String) {
        let mut body = format!("old {old}\n");
        for hash in proof {
            body.push_str(hash);
            body.push('\n');
        }
        body.push('\n');
        body.push_str(note);
        let response = reqwest::Client::new()
            .post(format!("{}/add-checkpoint", self.url))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, kind, response.text().await.unwrap())
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn grow(app: &TestApp, from: usize, count: usize) {
    app.append_images(from, count).await;
    log::sign_now(&app.state).await.unwrap();
}

/// The newest checkpoint note, its size, and the log's note key.
async fn checkpoint(app: &TestApp) -> (String, u64, String) {
    let (_, head) = app.get("/api/v1/log/head", "").await;
    (
        head["checkpoint"].as_str().unwrap().to_owned(),
        head["tree_size"].as_u64().unwrap(),
        head["note_verifier_key"].as_str().unwrap().to_owned(),
    )
}

/// The consistency proof from `from` to `to`, as base64 lines.
async fn proof(app: &TestApp, from: u64, to: u64) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/api/v1/log/proof/consistency?from={from}&to={to}"), "")
        .await;
    assert_eq!(status, 200, "{body}");
    body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.encode(hex::decode(h.as_str().unwrap()).unwrap()))
        .collect()
}

/// A checkpoint of `size` with another root, signed with the log's own key.
fn fork(signer: &NoteSigner, origin: &str, size: u64) -> String {
    let body = format!("{origin}\n{size}\n{}\n", B64.encode([0xee; 32]));
    Note {
        signatures: vec![signer.sign(&body)],
        text: body,
    }
    .to_text()
}

fn cosigned(line: &str, key: &VerifierKey, note: &str) -> bool {
    let text = Note::parse(note).unwrap().text;
    NoteSignature::parse(line.trim_end())
        .ok()
        .and_then(|s| s.verified_by(key, &text))
        .is_some()
}

fn dir_of(temp: &tempfile::TempDir) -> PathBuf {
    temp.path().join("witness")
}

#[actix_web::test]
async fn a_witness_cosigns_the_log_as_it_grows_and_refuses_a_fork_signed_with_its_key() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        grow(&app, 0, 5).await;
        let (first, size, log_key) = checkpoint(&app).await;
        let temp = tempfile::tempdir().unwrap();
        let witness = WitnessProcess::start(&dir_of(&temp), &log_key);

        let (status, kind, line) = witness.add(0, &[], &first).await;
        assert_eq!(
            (status, kind.as_str()),
            (200, "text/plain; charset=utf-8"),
            "[{backend}] {line}"
        );
        assert!(cosigned(&line, &witness.key, &first), "[{backend}] {line}");

        grow(&app, 5, 7).await;
        let (second, grown, _) = checkpoint(&app).await;
        let proof_lines = proof(&app, size, grown).await;
        let (status, _, line) = witness.add(size, &proof_lines, &second).await;
        assert_eq!(status, 200, "[{backend}] {line}");
        assert!(cosigned(&line, &witness.key, &second), "[{backend}]");

        // The insider signs a forked checkpoint with the log's key: no proof leads
        // to it from what the witness holds.
        let origin = app.state.config.log_origin.clone();
        let forked = fork(&app.state.note_signer, &origin, grown + 3);
        let (status, _, body) = witness.add(grown, &proof_lines, &forked).await;
        assert_eq!(status, 422, "[{backend}] {body}");
        let same_size = fork(&app.state.note_signer, &origin, grown);
        assert_eq!(witness.add(grown, &[], &same_size).await.0, 422, "[{backend}]");
        // A stale old is told the size held.
        let (status, kind, body) = witness.add(size, &proof_lines, &second).await;
        assert_eq!(
            (status, kind.as_str(), body.as_str()),
            (409, "text/x.tlog.size", format!("{grown}\n").as_str()),
            "[{backend}]"
        );
        // A stranger's key, and a log the witness does not know.
        let stranger = NoteSigner::from_seed(&origin, TYPE_ED25519, &[9; 32]).unwrap();
        let strange = Note::parse(&second).unwrap();
        let strange = Note {
            signatures: vec![stranger.sign(&strange.text)],
            text: strange.text,
        };
        assert_eq!(witness.add(grown, &[], &strange.to_text()).await.0, 403, "[{backend}]");
        let other = NoteSigner::from_seed("other.example/log", TYPE_ED25519, &[9; 32]).unwrap();
        let elsewhere = fork(&other, "other.example/log", 3);
        assert_eq!(witness.add(0, &[], &elsewhere).await.0, 404, "[{backend}]");
        assert_eq!(witness.add(0, &[], "not a checkpoint").await.0, 400, "[{backend}]");

        // The genuine history is cosigned on.
        grow(&app, 12, 2).await;
        let (third, newest, _) = checkpoint(&app).await;
        let (status, _, line) = witness.add(grown, &proof(&app, grown, newest).await, &third).await;
        assert_eq!(status, 200, "[{backend}] {line}");
    }
}

#[actix_web::test]
async fn a_witness_killed_around_a_cosignature_never_cosigns_another_root_for_that_size() {
    for app in TestApp::each().await {
        let backend = app.backend.name();
        grow(&app, 0, 3).await;
        let (note, mut held, log_key) = checkpoint(&app).await;
        let temp = tempfile::tempdir().unwrap();
        let dir = dir_of(&temp);
        let witness = WitnessProcess::start(&dir, &log_key);
        assert_eq!(witness.add(0, &[], &note).await.0, 200, "[{backend}]");
        let origin = app.state.config.log_origin.clone();
        let mut witness = Some(witness);
        for round in 0..6 {
            let w = witness.take().unwrap();
            grow(&app, 3 + round * 2, 2).await;
            let (note, size, _) = checkpoint(&app).await;
            let lines = proof(&app, held, size).await;
            if round % 2 == 0 {
                // Killed right after it answered: the answer's size must be held.
                let (status, _, body) = w.add(held, &lines, &note).await;
                assert_eq!(status, 200, "[{backend}] round {round}: {body}");
                w.kill();
                let w = WitnessProcess::start(&dir, &log_key);
                let (status, _, body) = w.add(0, &[], &note).await;
                assert_eq!((status, body), (409, format!("{size}\n")), "[{backend}] round {round}");
                held = size;
                witness = Some(w);
            } else {
                // Killed while the request may be in flight: afterwards it holds the
                // old size or the new one, nothing else.
                let url = w.url.clone();
                let body = format!("old {held}\n{}\n\n{note}", lines.join("\n"));
                let sent = tokio::spawn(async move {
                    reqwest::Client::new()
                        .post(format!("{url}/add-checkpoint"))
                        .body(body)
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                });
                w.kill();
                let answered = sent.await.unwrap().ok();
                let w = WitnessProcess::start(&dir, &log_key);
                let (status, _, body) = w.add(u64::MAX, &[], &note).await;
                assert_eq!(status, 409, "[{backend}] round {round}");
                let now_held: u64 = body.trim().parse().unwrap();
                assert!(
                    now_held == held || now_held == size,
                    "[{backend}] round {round}: {now_held}"
                );
                if answered == Some(200) {
                    assert_eq!(now_held, size, "[{backend}] round {round}: answered 200 but lost it");
                }
                held = now_held;
                witness = Some(w);
            }
            // Whatever it holds, a fork at that size signed with the log's key is refused.
            let w = witness.as_ref().unwrap();
            let forked = fork(&app.state.note_signer, &origin, held);
            assert_eq!(w.add(held, &[], &forked).await.0, 422, "[{backend}] round {round}");
        }
    }
}

/// A free loopback port (closed again at once, for a witness to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cosigners(checkpoint: &str, keys: &[VerifierKey]) -> Vec<bool> {
    let note = Note::parse(checkpoint).unwrap();
    keys.iter().map(|k| note.verified_by(k).is_some()).collect()
}

#[actix_web::test]
async fn the_server_gathers_a_quorum_of_cosignatures_and_says_when_it_has_none() {
    for backend in backends() {
        let temp = tempfile::tempdir().unwrap();
        let (witnesses, policy_file) = three_witnesses(temp.path());
        let app = TestApp::start(backend, &[("witness_policy", policy_file.to_str().unwrap())]).await;
        let name = app.backend.name();
        let (_, _, log_key) = checkpoint(&app).await;
        let mut running: Vec<Option<WitnessProcess>> = (0..3).map(|i| Some(restart(&witnesses, i, &log_key))).collect();
        let keys: Vec<VerifierKey> = witnesses.iter().map(|(_, _, k)| k.clone()).collect();

        // All three cosign the head; the served checkpoint carries the three lines.
        grow(&app, 0, 4).await;
        let (_, first_size, _) = checkpoint(&app).await;
        assert_eq!(
            run_once(&app.state, Job::GatherCosignatures).await.unwrap(),
            3,
            "[{name}]"
        );
        let (_, served) = app.get_text("/api/v1/log/checkpoint").await;
        assert_eq!(cosigners(&served, &keys), vec![true, true, true], "[{name}] {served}");
        assert_eq!(
            run_once(&app.state, Job::GatherCosignatures).await.unwrap(),
            0,
            "[{name}] nothing left"
        );

        // One down: the next head still gets two, each from the size it holds.
        running[2].take().unwrap().kill();
        grow(&app, 4, 3).await;
        let (_, size, _) = checkpoint(&app).await;
        assert_eq!(
            run_once(&app.state, Job::GatherCosignatures).await.unwrap(),
            2,
            "[{name}]"
        );
        let (_, served) = app.get_text("/api/v1/log/checkpoint").await;
        assert_eq!(cosigners(&served, &keys), vec![true, true, false], "[{name}]");
        let (_, metrics) = app.get_text("/metrics").await;
        for (witness, held) in [("w1.example", size), ("w2.example", size), ("w3.example", first_size)] {
            let line = format!("patchwarden_witness_cosigned_size{{witness=\"{witness}\"}} {held}");
            assert!(metrics.contains(&line), "[{name}] {line} in {metrics}");
        }
        let vendor = app.with_vendor_admin().await;
        let session = sign_in(&app, &vendor).await;
        let (_, page) = app.page(&session, "/vendor/log").await;
        assert!(
            page.contains("id=\"witness-list\"") && !page.contains("quorum-missing"),
            "[{name}] {page}"
        );

        // Two down: the new head has one cosignature, and the page says the quorum is missing.
        running[1].take().unwrap().kill();
        grow(&app, 7, 2).await;
        assert_eq!(
            run_once(&app.state, Job::GatherCosignatures).await.unwrap(),
            1,
            "[{name}]"
        );
        let (_, served) = app.get_text("/api/v1/log/checkpoint").await;
        assert_eq!(cosigners(&served, &keys), vec![true, false, false], "[{name}]");
        let (_, page) = app.page(&session, "/vendor/log").await;
        assert!(page.contains("id=\"quorum-missing\""), "[{name}] {page}");
        assert!(page.contains("w2.example") && page.contains("w3.example"), "[{name}]");

        // Back up, the witness is asked again (after its wait) and catches up with a
        // proof from the size it held.
        running[1] = Some(restart(&witnesses, 1, &log_key));
        app.state.witness_tracker.retry_now();
        assert_eq!(
            run_once(&app.state, Job::GatherCosignatures).await.unwrap(),
            1,
            "[{name}]"
        );
        let (_, served) = app.get_text("/api/v1/log/checkpoint").await;
        assert_eq!(cosigners(&served, &keys), vec![true, true, false], "[{name}]");
        let (_, page) = app.page(&session, "/vendor/log").await;
        assert!(!page.contains("quorum-missing"), "[{name}]");
    }
}

/// Three witnesses' directories, ports and keys, created before the log's key is
/// known, and the policy (quorum two of three) naming them.
fn three_witnesses(temp: &Path) -> (Vec<(PathBuf, u16, VerifierKey)>, PathBuf) {
    let placeholder = NoteSigner::from_seed("placeholder", TYPE_ED25519, &[1; 32])
        .unwrap()
        .verifier()
        .to_string();
    let mut witnesses = Vec::new();
    let mut policy = String::new();
    for n in 1..=3 {
        let (dir, port) = (temp.join(format!("w{n}")), free_port());
        let first = WitnessProcess::start_at(&dir, &placeholder, &format!("w{n}.example"), "127.0.0.1:0");
        policy.push_str(&format!("witness w{n}.example {} http://127.0.0.1:{port}\n", first.key));
        witnesses.push((dir, port, first.key.clone()));
        first.kill();
    }
    policy.push_str("group two-of-three 2 w1.example w2.example w3.example\nquorum two-of-three\n");
    let path = temp.join("policy");
    std::fs::write(&path, policy).unwrap();
    (witnesses, path)
}

/// Witness `i` of [`three_witnesses`] started for the log of `log_key`, on its port.
fn restart(witnesses: &[(PathBuf, u16, VerifierKey)], i: usize, log_key: &str) -> WitnessProcess {
    let (dir, port, _) = &witnesses[i];
    WitnessProcess::start_at(
        dir,
        log_key,
        &format!("w{}.example", i + 1),
        &format!("127.0.0.1:{port}"),
    )
}

/// An agent of acme's on `app` that requires the policy's quorum.
async fn strict_agent(app: &TestApp, f: &support::patching::Fixture, dir: &Path, policy: &Path) -> Agent {
    let device = enrol(app, f, "fw-strict", "6.3.0r20").await;
    let mut config = screenos_agent(&app.base, dir, identity(&device), &server_key(app).await, "6.3.0r20");
    config.witnesses = Some(WitnessRequirement {
        policy: Policy::parse(&std::fs::read_to_string(policy).unwrap()).unwrap(),
        max_age: std::time::Duration::from_secs(3600),
    });
    Agent::start(config).await.unwrap()
}

/// Gathers cosignatures and brings polls' view of the log up to date.
async fn gather(app: &TestApp) -> usize {
    let cosigned = run_once(&app.state, Job::GatherCosignatures).await.unwrap();
    log::follow(&app.state).await.unwrap();
    cosigned
}

#[actix_web::test]
async fn a_split_view_gets_no_quorum_and_agents_that_require_one_refuse_it_naming_the_witnesses() {
    const ORIGIN: &str = "updates.example.com/log";
    for backend in backends() {
        let temp = tempfile::tempdir().unwrap();
        let (witnesses, policy) = three_witnesses(temp.path());
        let settings = [("witness_policy", policy.to_str().unwrap()), ("log_origin", ORIGIN)];
        let genuine = TestApp::start(backend, &settings).await;
        let name = genuine.backend.name();
        let f = fixture(&genuine).await;
        publish_patch(&genuine, &f, "6.3.0r21", file_bytes(1024)).await;
        let (_, _, log_key) = checkpoint(&genuine).await;
        let mut running: Vec<Option<WitnessProcess>> = (0..3).map(|i| Some(restart(&witnesses, i, &log_key))).collect();
        assert_eq!(gather(&genuine).await, 3, "[{name}]");
        let agent_dir = tempfile::tempdir().unwrap();
        let mut agent = strict_agent(&genuine, &f, agent_dir.path(), &policy).await;
        let polled = agent.poll().await.unwrap();
        assert_eq!(polled.refused, None, "[{name}] the genuine head has its quorum");
        assert!(polled.offer.is_some(), "[{name}] and the fix is offered");

        // The split view: a second server with the vendor's key and origin, and a
        // history of its own holding a malicious patch, shown to one device.
        let keys_dir = genuine.config.keys_dir.to_str().unwrap().to_owned();
        let mut forked_settings = settings.to_vec();
        forked_settings.push(("keys_dir", &keys_dir));
        let forked = TestApp::start(backend, &forked_settings).await;
        let g = fixture(&forked).await;
        publish_patch(&forked, &g, "6.3.0r22", file_bytes(2048)).await;
        publish_patch(&forked, &g, "6.3.0r23", file_bytes(2048)).await;
        let (fork_note, fork_size, fork_key) = checkpoint(&forked).await;
        assert_eq!(fork_key, log_key, "[{name}] the same key signs both histories");
        let (_, genuine_size, _) = checkpoint(&genuine).await;
        assert!(fork_size > genuine_size, "[{name}] {fork_size} > {genuine_size}");
        // Every witness refuses it: it holds the genuine size, and no proof leads
        // from the genuine tree to the forked one.
        assert_eq!(gather(&forked).await, 0, "[{name}]");
        for w in running.iter().flatten() {
            let (status, _, _) = w
                .add(genuine_size, &proof(&forked, genuine_size, fork_size).await, &fork_note)
                .await;
            assert_eq!(status, 422, "[{name}] {}", w.url);
        }
        let report = witnesses_report(&forked).await;
        assert!(!report.met, "[{name}] the forked head has no quorum");
        let victim_dir = tempfile::tempdir().unwrap();
        let mut victim = strict_agent(&forked, &g, victim_dir.path(), &policy).await;
        let polled = victim.poll().await.unwrap();
        let why = polled.refused.expect("the forked answer is refused");
        assert!(why.contains("refused (witnesses)"), "[{name}] {why}");
        for witness in ["w1.example", "w2.example", "w3.example"] {
            assert!(why.contains(&format!("{witness}: no cosignature")), "[{name}] {why}");
        }
        assert!(
            polled.offer.is_none(),
            "[{name}] nothing is offered from a refused answer"
        );

        // The genuine history goes on being cosigned.
        grow(&genuine, 100, 2).await;
        assert_eq!(gather(&genuine).await, 3, "[{name}]");
        assert_eq!(agent.poll().await.unwrap().refused, None, "[{name}]");
        // One witness down: the quorum holds.
        running[2].take().unwrap().kill();
        grow(&genuine, 102, 2).await;
        assert_eq!(gather(&genuine).await, 2, "[{name}]");
        assert_eq!(agent.poll().await.unwrap().refused, None, "[{name}]");
        // Two down: the new head is not accepted, and the vendor's page says why.
        running[1].take().unwrap().kill();
        grow(&genuine, 104, 2).await;
        assert_eq!(gather(&genuine).await, 1, "[{name}]");
        let why = agent.poll().await.unwrap().refused.expect("no quorum");
        assert!(
            why.contains("cosigned by w1.example") && why.contains("w2.example: no cosignature"),
            "[{name}] {why}"
        );
        assert!(!witnesses_report(&genuine).await.met, "[{name}]");
    }
}

async fn witnesses_report(app: &TestApp) -> patchwarden::services::witnesses::WitnessReport {
    patchwarden::services::witnesses::report(&app.state)
        .await
        .unwrap()
        .expect("a policy is set")
}

/// What a site without a network is handed for patch `id`: the file, its
/// signature and its proof, as acme's admin downloads them.
async fn carried(app: &TestApp, f: &support::patching::Fixture, id: &str) -> (Vec<u8>, String, String) {
    let token = &f.acme.admin.token;
    let name = app.backend.name();
    let mut got = Vec::new();
    for part in ["download", "minisig", "proof"] {
        let (status, bytes) = app.get_bytes(&format!("/api/v1/patches/{id}/{part}"), token).await;
        assert_eq!(status, 200, "[{name}] {part}: {}", String::from_utf8_lossy(&bytes));
        got.push(bytes);
    }
    let proof = String::from_utf8(got.pop().unwrap()).unwrap();
    let minisig = String::from_utf8(got.pop().unwrap()).unwrap();
    (got.pop().unwrap(), minisig, proof)
}

/// The agent's configuration of an air-gapped ScreenOS ssg-500 on 6.3.0r20 in
/// `dir`, whose server is nowhere to be reached; installing copies the file to
/// `dir/installed.bin`.
fn air_gapped_config(dir: &Path, device_token: &str, public_key: &str, policy: &Path) -> PathBuf {
    std::fs::write(dir.join("vendor.pub"), public_key).unwrap();
    let installed = dir.join("installed.bin");
    let config = format!(
        "server = \"http://127.0.0.1:{}\"\nproduct = \"screenos\"\nplatform = \"ssg-500\"\nname = \"fw-vault\"\n\
         version = \"6.3.0r20\"\ndevice_token = \"{device_token}\"\npublic_keys = [\"vendor.pub\"]\n\
         state_file = \"state.json\"\ndownload_dir = \"downloads\"\n\
         install_command = [\"sh\", \"-c\", \"cp \\\"$PATCHWARDEN_FILE\\\" {}\"]\nwitness_policy = \"{}\"\n",
        free_port(),
        installed.display(),
        policy.display()
    );
    let path = dir.join("agent.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `patchwarden-agent install` of the files in `dir`.
fn install_by_hand(config: &Path, dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_patchwarden-agent"))
        .arg("--config")
        .arg(config)
        .args([
            "install",
            "patch.bin",
            "--minisig",
            "patch.bin.minisig",
            "--proof",
            "patch.tlog-proof",
        ])
        .current_dir(dir)
        .env("PATCHWARDEN_AGENT_LOG", "warn")
        .output()
        .unwrap()
}

/// The version the agent's state file says runs, if it has one.
fn state_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).unwrap();
    state["version"].as_str().map(str::to_owned)
}

#[actix_web::test]
async fn an_air_gapped_device_installs_a_patch_from_its_proof_and_refuses_it_with_any_byte_changed() {
    for backend in backends() {
        let temp = tempfile::tempdir().unwrap();
        let (witnesses, policy) = three_witnesses(temp.path());
        let app = TestApp::start(backend, &[("witness_policy", policy.to_str().unwrap())]).await;
        let name = app.backend.name();
        let f = fixture(&app).await;
        let (_, _, log_key) = checkpoint(&app).await;
        let running: Vec<WitnessProcess> = (0..3).map(|i| restart(&witnesses, i, &log_key)).collect();
        let id = publish_patch(&app, &f, "6.3.0r21", file_bytes(4096)).await;
        assert_eq!(gather(&app).await, 3, "[{name}]");
        let (file, minisig, proof) = carried(&app, &f, &id).await;

        // The proof is C2SP's: header, the entry as extra data, index, hashes, and the
        // checkpoint with the three cosignatures.
        assert!(proof.starts_with("c2sp.org/tlog-proof@v1\nextra "), "[{name}] {proof}");
        let parsed = patchwarden::domain::proof::TlogProof::parse(&proof).unwrap();
        let keys: Vec<VerifierKey> = running.iter().map(|w| w.key.clone()).collect();
        assert_eq!(
            cosigners(&parsed.checkpoint.to_text(), &keys),
            vec![true, true, true],
            "[{name}]"
        );

        // The evidence bundle carries the same proof and the cosigned checkpoint; under
        // the policy, `audit --bundle` requires the quorum on both.
        let path = format!("/api/v1/advisories/{}/evidence", f.advisory);
        assert_eq!(app.get_bytes(&path, &f.acme.admin.token).await.0, 200, "[{name}]");
        gather(&app).await;
        let (status, bundle) = app.get_bytes(&path, &f.acme.admin.token).await;
        assert_eq!(status, 200, "[{name}]");
        let two_of_three = Policy::parse(&std::fs::read_to_string(&policy).unwrap()).unwrap();
        let key = server_key(&app).await;
        let report = patchwarden::client::audit::verify_bundle(&bundle, &key, Some(&two_of_three)).unwrap();
        assert_eq!(report.proofs, 1, "[{name}]");
        let bundled = report.checkpoint.unwrap().to_text();
        assert_eq!(cosigners(&bundled, &keys), vec![true, true, true], "[{name}]");
        let stranger = NoteSigner::from_seed("w4.example", patchwarden::domain::note::TYPE_COSIGNATURE_V1, &[4; 32])
            .unwrap()
            .verifier()
            .to_string();
        let four = std::fs::read_to_string(&policy)
            .unwrap()
            .replace("group two-of-three 2 w1.example w2.example w3.example", "")
            .replace("quorum two-of-three", "")
            + &format!(
                "witness w4.example {stranger} http://127.0.0.1:9\n\
                 group all-four all w1.example w2.example w3.example w4.example\nquorum all-four\n"
            );
        let err =
            patchwarden::client::audit::verify_bundle(&bundle, &key, Some(&Policy::parse(&four).unwrap())).unwrap_err();
        assert!(
            err.contains("(log/checkpoint)") && err.contains("w4.example: no cosignature"),
            "[{name}] {err}"
        );

        let site = tempfile::tempdir().unwrap();
        let dir = site.path();
        std::fs::write(dir.join("patch.bin"), &file).unwrap();
        std::fs::write(dir.join("patch.bin.minisig"), &minisig).unwrap();
        let device = enrol(&app, &f, "fw-vault", "6.3.0r20").await;
        let config = air_gapped_config(dir, device["token"].as_str().unwrap(), &server_key(&app).await, &policy);

        // One byte of the proof changed (in an inclusion proof hash), or of the file:
        // refused, nothing installed.
        let hash_line = proof.lines().nth(3).unwrap();
        let mut changed_hash = hash_line.to_owned().into_bytes();
        changed_hash[0] = if changed_hash[0] == b'A' { b'B' } else { b'A' };
        let changed = proof.replacen(hash_line, std::str::from_utf8(&changed_hash).unwrap(), 1);
        std::fs::write(dir.join("patch.tlog-proof"), &changed).unwrap();
        let out = install_by_hand(&config, dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "[{name}] {stderr}");
        assert!(
            stderr.contains("refused: the proof does not verify"),
            "[{name}] {stderr}"
        );
        assert!(!dir.join("installed.bin").exists(), "[{name}]");
        std::fs::write(dir.join("patch.tlog-proof"), &proof).unwrap();
        let mut bad_file = file.clone();
        bad_file[100] ^= 1;
        std::fs::write(dir.join("patch.bin"), &bad_file).unwrap();
        let out = install_by_hand(&config, dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains("refused"), "[{name}] {stderr}");
        assert!(!dir.join("installed.bin").exists(), "[{name}]");
        assert_ne!(state_version(dir).as_deref(), Some("6.3.0r21"), "[{name}]");

        // Every witness down and the server gone: the genuine files install.
        drop(running);
        std::fs::write(dir.join("patch.bin"), &file).unwrap();
        let out = install_by_hand(&config, dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "[{name}] {stderr}");
        assert_eq!(std::fs::read(dir.join("installed.bin")).unwrap(), file, "[{name}]");
        assert_eq!(state_version(dir).as_deref(), Some("6.3.0r21"), "[{name}]");

        // Every byte of the proof matters: under a policy that needs all three
        // witnesses, each one-bit change is refused before the install command runs
        // (which here would fail, telling a verified proof from a refused one).
        let all_three = std::fs::read_to_string(&policy)
            .unwrap()
            .replace("group two-of-three 2", "group all-three all")
            .replace("quorum two-of-three", "quorum all-three");
        let strict_dir = tempfile::tempdir().unwrap();
        let mut strict = screenos_agent(
            "http://127.0.0.1:9",
            strict_dir.path(),
            identity(&device),
            &server_key(&app).await,
            "6.3.0r20",
        );
        strict.installer = patchwarden::client::agent::Installer::Command(vec!["false".into()]);
        strict.witnesses = Some(WitnessRequirement {
            policy: Policy::parse(&all_three).unwrap(),
            max_age: std::time::Duration::from_secs(3600),
        });
        let mut agent = Agent::open(strict, reqwest::Client::new()).unwrap();
        let path = dir.join("patch.bin");
        let month = std::time::Duration::from_secs(30 * 86_400);
        let genuine = agent.install_offline(&path, &minisig, &proof, month).await.unwrap();
        assert!(
            matches!(genuine, OfflineOutcome::InstallFailed(_)),
            "[{name}] the genuine proof verifies: {genuine:?}"
        );
        let bytes = proof.as_bytes();
        for at in 0..bytes.len() {
            let mut flipped = bytes.to_vec();
            flipped[at] ^= 1;
            let Ok(text) = String::from_utf8(flipped) else {
                continue; // not text: the agent cannot even read it
            };
            let outcome = agent.install_offline(&path, &minisig, &text, month).await.unwrap();
            assert!(
                matches!(outcome, OfflineOutcome::Refused(_)),
                "[{name}] byte {at} changed went unnoticed: {outcome:?} in {:?}",
                &proof[at.saturating_sub(30)..(at + 30).min(proof.len())]
            );
        }
    }
}
