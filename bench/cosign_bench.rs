//! Signing a tree head and gathering its cosignatures from three witnesses, through
//! the service calls the server makes: a SQLite log in a temporary directory, three
//! witnesses served over loopback HTTP in this process (each writing and syncing its
//! state file before it answers, as `patchwarden witness` does), and a policy naming
//! them. Each round appends one event, signs a head and asks the witnesses; the
//! time from the append to the last cosignature stored is measured. Prints one JSON
//! object.
//!
//!   cosign-bench [ROUNDS]      (default 500)

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use patchwarden::config::RawSettings;
use patchwarden::domain::event::{Actor, Event};
use patchwarden::domain::note::VerifierKey;
use patchwarden::jobs::{run_once, Job};
use patchwarden::services::{log, Services};
use patchwarden::witness::store::{open_key, StateFile, STATE_FILE};
use patchwarden::witness::{serve, Witness};

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at].as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(Ok(500), |s| s.parse())
        .context("usage: cosign-bench [ROUNDS]")?;
    actix_web::rt::System::new().block_on(run(rounds))
}

async fn run(rounds: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let origin = "bench.example/log";
    // The log's key first: the witnesses are started for it.
    let mut raw = RawSettings::default();
    raw.set("data_dir", dir.path().to_string_lossy())?;
    raw.set("keys_dir", dir.path().join("keys").to_string_lossy())?;
    raw.set("database_url", dir.path().join("bench.db").to_string_lossy())?;
    raw.set("log_origin", origin)?;
    raw.set("outbound_deny", "")?;
    raw.set("log_level", "error")?;
    let mut policy = String::new();
    let mut servers = Vec::new();
    {
        let services = Services::open(raw.clone().validate()?).await?;
        let log_key = VerifierKey::clone(services.note_signer.verifier());
        for n in 1..=3 {
            let data = dir.path().join(format!("w{n}"));
            let signer = open_key(&data, Some(&format!("w{n}.bench")))?;
            let state = StateFile::open(&data.join(STATE_FILE))?;
            let witness = Arc::new(Witness::new(signer, vec![log_key.clone()], state).map_err(anyhow::Error::msg)?);
            let (bound, server) = serve::bind(witness.clone(), "127.0.0.1:0".parse()?)?;
            policy.push_str(&format!("witness w{n}.bench {} http://{bound}\n", witness.verifier()));
            servers.push(actix_web::rt::spawn(server));
        }
    }
    policy.push_str("group all-three all w1.bench w2.bench w3.bench\nquorum all-three\n");
    let policy_file = dir.path().join("policy");
    std::fs::write(&policy_file, &policy)?;
    raw.set("witness_policy", policy_file.to_string_lossy())?;
    let services = Services::open(raw.validate()?).await?;

    let mut sign = Vec::with_capacity(rounds);
    let mut total = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let began = Instant::now();
        services
            .db
            .run(move |conn| {
                conn.write_transaction(|conn| {
                    let event = Event::ImageRegistered {
                        product: "bench".into(),
                        sha256: format!("{i:064x}"),
                        version: "1".into(),
                        platform: String::new(),
                    };
                    log::append(conn, &event, &Actor::Cli)
                })
            })
            .await?;
        log::sign_now(&services).await?;
        sign.push(began.elapsed());
        let cosigned = run_once(&services, Job::GatherCosignatures).await?;
        anyhow::ensure!(cosigned == 3, "round {i}: {cosigned} of 3 witnesses cosigned");
        total.push(began.elapsed());
    }
    sign.sort_unstable();
    total.sort_unstable();
    let out = serde_json::json!({
        "rounds": rounds,
        "witnesses": 3,
        "sign_head_ms": {"median": percentile(&sign, 0.5), "p99": percentile(&sign, 0.99)},
        "append_sign_and_cosign_ms": {
            "median": percentile(&total, 0.5),
            "p99": percentile(&total, 0.99),
            "max": percentile(&total, 1.0),
        },
    });
    println!("{out}");
    for server in servers {
        server.abort();
    }
    Ok(())
}
