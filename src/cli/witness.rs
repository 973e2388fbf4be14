//! `patchwarden witness`: opens (or creates) the witness's key and state under
//! `--data`, prints its verifier key and address, and serves `POST /add-checkpoint`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use patchwarden::domain::note::VerifierKey;
use patchwarden::witness::store::{open_key, StateFile, STATE_FILE};
use patchwarden::witness::{serve, Witness};

pub fn run(listen: SocketAddr, data: &Path, logs: &[String], name: Option<&str>) -> anyhow::Result<()> {
    let logs = logs
        .iter()
        .map(|key| VerifierKey::parse(key).map_err(|e| anyhow::anyhow!("--log {key}: {e}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let signer = open_key(data, name)?;
    let state = StateFile::open(&data.join(STATE_FILE))?;
    let witness = Arc::new(Witness::new(signer, logs, state).map_err(anyhow::Error::msg)?);
    actix_web::rt::System::new().block_on(async move {
        let (bound, server) = serve::bind(witness.clone(), listen).with_context(|| format!("listening on {listen}"))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "witness {}", witness.verifier())?;
        writeln!(out, "listening on http://{bound}")?;
        out.flush()?;
        drop(out);
        server.await.context("serving")
    })
}
