//! `patchwarden audit` and `patchwarden evidence`.

use std::path::PathBuf;

use anyhow::Context;

use patchwarden::client::audit::{self, AuditRequest};
use patchwarden::config::Config;
use patchwarden::db::models::Customer;
use patchwarden::services::evidence;
use patchwarden::services::Services;

use super::cli_error;

/// Audits a server, or checks a bundle offline; fails when anything is wrong.
pub fn run(
    server: Option<url::Url>,
    pubkey: PathBuf,
    state: Option<PathBuf>,
    token: Option<String>,
    bundle: Option<PathBuf>,
    witness_policy: Option<PathBuf>,
) -> anyhow::Result<()> {
    let public_key = audit::read_public_key(&pubkey)?;
    let witness_policy = match witness_policy {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                patchwarden::domain::policy::Policy::parse(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            )
        }
    };
    if let Some(path) = bundle {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let report = audit::verify_bundle(&bytes, &public_key, witness_policy.as_ref())
            .map_err(|why| anyhow::anyhow!("{}: {why}", path.display()))?;
        let fixed = report
            .devices
            .iter()
            .filter(|d| d.exposure == patchwarden::domain::ExposureState::Fixed)
            .count();
        println!(
            "{}: evidence of {} for customer {} verifies: {} revision(s), {} patch(es), {} log entries in the tree of {} (head {}), {} device(s), {} fixed",
            path.display(),
            report.manifest.advisory,
            report.manifest.customer,
            report.manifest.revisions.len(),
            report.manifest.patches.len(),
            report.entries,
            report.head.tree_size,
            report.head.sequence,
            report.devices.len(),
            fixed
        );
        println!(
            "  checkpoint: {}; offline proofs: {} of {} patch(es){}",
            match &report.checkpoint {
                Some(note) => format!("a signed note with {} signature line(s)", note.signatures.len()),
                None => "none".into(),
            },
            report.proofs,
            report.manifest.patches.len(),
            if witness_policy.is_some() {
                "; the witnesses' quorum holds"
            } else {
                ""
            }
        );
        for device in &report.devices {
            println!(
                "  {}\t{}\t{}\t{}\tentries {:?}",
                device.id,
                device.name,
                device.version.as_deref().unwrap_or("unknown"),
                device.exposure,
                device.entries
            );
        }
        return Ok(());
    }
    let server = server.context("--server is required without --bundle")?;
    let request = AuditRequest {
        server,
        public_key,
        state_file: state,
        token,
        witness_policy,
    };
    let report = actix_web::rt::System::new().block_on(audit::audit(&request))?;
    for line in &report.checked {
        println!("ok: {line}");
    }
    for problem in &report.problems {
        println!("PROBLEM ({}): {}", problem.kind.as_str(), problem.detail);
    }
    anyhow::ensure!(report.ok(), "the audit found {} problem(s)", report.problems.len());
    Ok(())
}

/// Writes the evidence bundle of `advisory` for customer `slug`.
pub fn evidence(config: Config, advisory: String, slug: String, out: Option<PathBuf>) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let services = Services::open(config).await?;
        let lookup = slug.clone();
        let customer = services
            .db
            .query(move |conn| Customer::find_by_slug(conn, &lookup))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_context(|| format!("there is no customer `{slug}`"))?;
        let (name, bytes) = evidence::bundle(&services, &customer.id, advisory)
            .await
            .map_err(cli_error)?;
        let path = out.unwrap_or_else(|| PathBuf::from(name));
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {} ({} bytes)", path.display(), bytes.len());
        Ok(())
    })
}
