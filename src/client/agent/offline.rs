//! A patch brought in by hand to a device that reaches no server (the air-gapped
//! site's path): `patchwarden-agent install FILE --minisig SIG --proof PROOF`. The
//! proof is the C2SP `tlog-proof` the server gives for the patch's publication
//! (`GET /api/v1/patches/{id}/proof`); with it the agent checks offline all that a
//! poll answer would have shown it — the head signed by a trusted key (minisign and
//! note signature), the witnesses' quorum when it has a policy, the entry's
//! inclusion in that head, that the entry logs this file and this signature, that
//! the head lists the patch as not yanked, and then the file itself: signature,
//! trusted comment and sha256. Only then does it install, and it records what runs
//! in its state; nothing is reported, since no server is reachable.

use std::path::Path;
use std::time::Duration;

use super::verify::{self, Refusal, Verified};
use super::{Agent, Running};
use crate::api::device::Offer;
use crate::api::log::OfferLog;
use crate::domain::proof::{check_patch_proof, ProvenPatch, TlogProof};

/// How an install from a proof ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OfflineOutcome {
    /// Verified and installed; what the device runs now.
    Installed(Running),
    /// Not installed: what failed verification.
    Refused(String),
    /// Verified, but the install command failed.
    InstallFailed(String),
}

impl Agent {
    /// Verifies `file` with its minisign `signature` and the C2SP `proof` of its
    /// publication, and installs it. A head (and each cosignature counted for the
    /// quorum) older than `max_age` is refused: what it says of yanked patches may
    /// be out of date.
    pub async fn install_offline(
        &mut self,
        file: &Path,
        signature: &str,
        proof: &str,
        max_age: Duration,
    ) -> anyhow::Result<OfflineOutcome> {
        let offer = match self.check_offline(file, signature, proof, max_age) {
            Ok(offer) => offer,
            Err(why) => {
                tracing::warn!(file = %file.display(), "{why}");
                return Ok(OfflineOutcome::Refused(why));
            }
        };
        match self.install(&offer, file).await {
            Ok((version, running)) => {
                self.state.version = Some(running.version.clone());
                self.state.image_sha256 = running.image_sha256.clone();
                self.save()?;
                *self.running.write().unwrap_or_else(|e| e.into_inner()) = running.clone();
                tracing::info!(patch = %offer.patch_id, %version, "installed from a proof");
                Ok(OfflineOutcome::Installed(running))
            }
            Err(why) => {
                tracing::warn!(patch = %offer.patch_id, "install failed: {why}");
                Ok(OfflineOutcome::InstallFailed(why))
            }
        }
    }

    /// Everything checked before the install; the offer the proof and the
    /// signature make, or why they are refused.
    fn check_offline(&self, file: &Path, signature: &str, proof: &str, max_age: Duration) -> Result<Offer, String> {
        let proof = TlogProof::parse(proof).map_err(|e| format!("refused: the proof does not read: {e}"))?;
        let proven = check_patch_proof(&proof, |id| self.keyring.public_key(id))
            .map_err(|e| format!("refused: the proof does not verify: {e}"))?;
        let head = &proven.head;
        if let Some(after) = self.keyring.compromised_after(&proven.key_id) {
            if head.tree_size > after {
                return Err(format!(
                    "refused (compromised key): the proof's head of {} entries is signed by key {}, which a \
                     rotation declared compromised after {after} entries",
                    head.tree_size,
                    proven.key_id.to_uppercase()
                ));
            }
        }
        let now = chrono::Utc::now();
        let age = now.signed_duration_since(head.timestamp).num_seconds();
        if age < -60 {
            return Err(format!(
                "refused: the proof's head is dated {}, in the future",
                head.timestamp.to_rfc3339()
            ));
        }
        if age > 0 && age.unsigned_abs() > max_age.as_secs() {
            return Err(format!(
                "refused (stale proof): the proof's head was signed {age} s ago, more than the {} s allowed; \
                 fetch a new proof of the patch",
                max_age.as_secs()
            ));
        }
        if let Some(required) = &self.config.witnesses {
            let now = now.timestamp().max(0) as u64;
            required
                .policy
                .check_note(&proven.checkpoint, now, max_age.as_secs())
                .map_err(|why| {
                    format!(
                        "refused (witnesses): the proof's head of {} entries (sequence {}): {why}",
                        head.tree_size, head.sequence
                    )
                })?;
        }
        if let Some(held) = &self.head {
            let same_tree = held.origin == head.origin && held.tree_size == head.tree_size;
            if held.origin != head.origin || (same_tree && held.root_hash != head.root_hash) {
                return Err(format!(
                    "refused (fork): the proof's head of {} entries of log `{}` is not the tree this device holds",
                    head.tree_size, head.origin
                ));
            }
        }
        let offer = offer_of(&proven, file, signature)?;
        let running = self.running();
        let expected = self.expected(&running);
        let verified = Verified {
            head,
            revoked: Some(&proven.revocations),
            keyring: &self.keyring,
        };
        verify::check_offer(verified, expected, &offer, self.config.limits.max_patch_bytes)
            .and_then(|()| verify::check(&self.keyring, expected, &offer, file))
            .map_err(|refusal: Refusal| refusal.to_string())?;
        Ok(offer)
    }
}

/// The offer a proven publication entry makes of `file` and its `signature`: every
/// field as logged, so that the checks of an offer compare the file and signature
/// with the log.
fn offer_of(proven: &ProvenPatch, file: &Path, signature: &str) -> Result<Offer, String> {
    let entry = &proven.entry;
    let field = |name: &str| {
        entry
            .text(name)
            .map(str::to_owned)
            .ok_or_else(|| format!("refused: entry {} logs no {name}", proven.index))
    };
    let size = entry
        .fields
        .get("size")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| format!("refused: entry {} logs no size", proven.index))?;
    Ok(Offer {
        patch_id: proven.patch_id.clone(),
        version: field("version")?,
        platform: entry.text("platform").map(str::to_owned),
        filename: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        download_url: String::new(),
        sha256: field("sha256")?,
        size,
        signature: signature.to_owned(),
        advisories: Vec::new(),
        emergency: false,
        rollback: entry
            .fields
            .get("rollback")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        log: Some(OfferLog {
            index: proven.index,
            leaf: proven.leaf.clone(),
            tree_size: proven.head.tree_size,
            proof: proven.proof.clone(),
        }),
        rollout: None,
        install_after: None,
        install: crate::domain::device::Install::Now,
    })
}
