//! What the agent does with an offer: checks it against the log and its own
//! bounds before a byte is fetched, downloads it (resuming), verifies the file,
//! installs it, and reports each step. A refused offer is deleted and reported
//! with the reason, and not tried again.

use std::path::{Path, PathBuf};

use anyhow::Context;
use reqwest::header::AUTHORIZATION;

use super::answers::answer;
use super::download::{self, DownloadError};
use super::state::Pending;
use super::verify::{self, Expected, Refusal, Verified};
use super::{same_file, Agent, Installer, Outcome, Running, SimulatedOutcome};
use crate::api::device::{KeyResponse, Offer, Report};
use crate::domain::ReportState;

impl Agent {
    /// Whether this offer was installed, refused or failed before (it is not tried
    /// again).
    pub fn settled(&self, offer: &Offer) -> bool {
        self.settled
            .iter()
            .any(|(id, sig)| *id == offer.patch_id && *sig == offer.signature)
    }

    /// Downloads, verifies and installs `offer`, reporting each step.
    pub async fn apply(&mut self, offer: &Offer) -> anyhow::Result<Outcome> {
        if let Err(refusal) = self.check_offer(offer) {
            let part = self.part_path(offer);
            return self.refuse(offer, &part, refusal.to_string()).await;
        }
        // The same file from the same signer resumes, wherever it is served from now.
        let same_pending = self.state.pending.as_ref().is_some_and(|p| same_file(&p.offer, offer));
        if !same_pending {
            // Another download in progress is given up for this one: its bytes go.
            if let Some(previous) = self.state.pending.take() {
                let _ = tokio::fs::remove_file(self.part_path(&previous.offer)).await;
            }
            self.state.pending = Some(Pending {
                offer: offer.clone(),
                etag: None,
                ready: false,
            });
            let _ = tokio::fs::remove_file(self.part_path(offer)).await;
            self.save()?;
            self.report(offer, ReportState::Downloading, None, None).await;
        }
        tokio::fs::create_dir_all(&self.config.download_dir)
            .await
            .with_context(|| format!("creating {}", self.config.download_dir.display()))?;
        let part = self.part_path(offer);
        let url = self.url(&offer.download_url)?;
        let same_origin = url.origin() == self.config.server.origin();
        let bearer = if same_origin {
            Some(self.token()?.to_owned())
        } else {
            None
        };
        let etag = self.state.pending.as_ref().and_then(|p| p.etag.clone());
        // The state as it will be once a fresh response's validator is known.
        let mut state = self.state.clone();
        let state_file = &self.config.state_file;
        let fetched = download::fetch(
            &self.http,
            &url,
            bearer.as_deref(),
            &part,
            etag.as_deref(),
            offer.size,
            |etag| {
                if let Some(pending) = state.pending.as_mut() {
                    pending.etag = etag;
                }
                state.save(state_file)
            },
        )
        .await;
        self.state = state;
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(DownloadError::Interrupted(why)) => {
                tracing::warn!(patch = %offer.patch_id, "download interrupted, will resume: {why}");
                return Ok(Outcome::Interrupted(why));
            }
            Err(e @ DownloadError::TooLong(_)) => {
                return self.refuse(offer, &part, format!("refused: {e}")).await;
            }
        };
        let mut verdict = self.check(offer, &part);
        if let Err(Refusal::UntrustedKey(_)) = verdict {
            // A key rotation may have introduced the signing key: learn, then look again.
            if self.learn_keys().await? {
                verdict = self.check(offer, &part);
            }
        }
        if let Err(refusal) = verdict {
            return self.refuse(offer, &part, refusal.to_string()).await;
        }
        let ready = self.state.pending.as_ref().is_some_and(|p| p.ready);
        if let Some(after) = offer.deferred_at(chrono::Utc::now()) {
            // Outside the maintenance window: kept, verified, installed once it opens.
            if !ready {
                if let Some(pending) = self.state.pending.as_mut() {
                    pending.ready = true;
                }
                self.save()?;
                self.report(offer, ReportState::Downloaded, None, None).await;
                tracing::info!(patch = %offer.patch_id, install_after = %after, "downloaded and verified; installs when the maintenance window opens");
            }
            return Ok(Outcome::Deferred(after));
        }
        if !ready {
            self.report(offer, ReportState::Downloaded, None, None).await;
        }
        self.report(offer, ReportState::Installing, None, None).await;
        let installed = self.install(offer, &part).await;
        let _ = tokio::fs::remove_file(&part).await;
        self.state.pending = None;
        match installed {
            Ok((claimed, running)) => {
                self.state.version = Some(running.version.clone());
                self.state.image_sha256 = running.image_sha256.clone();
                self.save()?;
                *self.running.write().unwrap_or_else(|e| e.into_inner()) = running.clone();
                self.settled.push((offer.patch_id.clone(), offer.signature.clone()));
                self.report(offer, ReportState::Installed, Some(&claimed), None).await;
                tracing::info!(patch = %offer.patch_id, version = %claimed, "installed");
                Ok(Outcome::Installed { fetched, running })
            }
            Err(why) => {
                self.save()?;
                self.settled.push((offer.patch_id.clone(), offer.signature.clone()));
                self.report(offer, ReportState::Failed, None, Some(&why)).await;
                tracing::warn!(patch = %offer.patch_id, "install failed: {why}");
                Ok(Outcome::InstallFailed(why))
            }
        }
    }

    /// What this device expects of a patch, running `running`.
    pub(super) fn expected<'a>(&'a self, running: &'a Running) -> Expected<'a> {
        Expected {
            product: &self.config.product,
            platform: self.config.platform.as_deref(),
            running: &running.version,
            scheme: self.config.version_scheme,
        }
    }

    /// Verifies a download of `offer` with the keys trusted now.
    pub(super) fn check(&self, offer: &Offer, file: &Path) -> Result<(), Refusal> {
        let running = self.running();
        verify::check(&self.keyring, self.expected(&running), offer, file)
    }

    /// Checks `offer` against the log, the yanked patches and the running version,
    /// before downloading.
    pub(super) fn check_offer(&self, offer: &Offer) -> Result<(), Refusal> {
        let running = self.running();
        let head = self
            .head
            .as_ref()
            .ok_or_else(|| Refusal::NotLogged("no tree head has been accepted yet".into()))?;
        let verified = Verified {
            head,
            revoked: self.revoked.as_deref(),
            keyring: &self.keyring,
        };
        verify::check_offer(
            verified,
            self.expected(&running),
            offer,
            self.config.limits.max_patch_bytes,
        )
    }

    /// Deletes the download, forgets it, and reports why.
    pub(super) async fn refuse(&mut self, offer: &Offer, part: &Path, why: String) -> anyhow::Result<Outcome> {
        let _ = tokio::fs::remove_file(part).await;
        self.state.pending = None;
        self.save()?;
        self.settled.push((offer.patch_id.clone(), offer.signature.clone()));
        tracing::warn!(patch = %offer.patch_id, "{why}");
        self.report(offer, ReportState::Failed, None, Some(&why)).await;
        Ok(Outcome::Refused(why))
    }

    /// Fetches the server's key list and trusts the keys that rotation statements,
    /// signed by keys already trusted, introduce. Returns whether any was added.
    pub async fn learn_keys(&mut self) -> anyhow::Result<bool> {
        let response = self
            .http
            .get(self.url("/api/v1/keys")?)
            .send()
            .await
            .context("listing keys")?;
        let listing: Vec<KeyResponse> = answer(response, "the key list").await?;
        let learnt = self.keyring.learn(&listing);
        if learnt.is_empty() {
            return Ok(false);
        }
        for key in &learnt {
            tracing::info!(key.id = %key.key_id, introduced_by = %key.introduced_by, "trusting a rotated signing key");
        }
        self.state.learnt_keys.extend(learnt);
        self.save()?;
        Ok(true)
    }

    /// Installs a verified file. Returns the version to report and what runs after.
    pub(super) async fn install(&self, offer: &Offer, file: &Path) -> Result<(String, Running), String> {
        let before = self.running();
        match &self.config.installer {
            Installer::Command(command) => {
                let status = tokio::process::Command::new(&command[0])
                    .args(&command[1..])
                    .env("PATCHWARDEN_FILE", file)
                    .env("PATCHWARDEN_VERSION", &offer.version)
                    .env("PATCHWARDEN_PATCH_ID", &offer.patch_id)
                    .env("PATCHWARDEN_SHA256", &offer.sha256)
                    .stdin(std::process::Stdio::null())
                    .status()
                    .await
                    .map_err(|e| format!("the install command {} could not start: {e}", command[0]))?;
                if !status.success() {
                    return Err(format!("the install command {} ended with {status}", command[0]));
                }
                let image_sha256 = match &self.config.image_file {
                    Some(image) => {
                        Some(verify::sha256_file(image).map_err(|e| format!("hashing {}: {e}", image.display()))?)
                    }
                    None => Some(offer.sha256.clone()),
                };
                let running = Running {
                    version: offer.version.clone(),
                    image_sha256,
                };
                Ok((offer.version.clone(), running))
            }
            Installer::Simulated(simulated) => {
                tokio::time::sleep(simulated.duration).await;
                match simulated.outcome {
                    SimulatedOutcome::Fails
                        if simulated.fails_only.is_empty() || simulated.fails_only.contains(&offer.version) =>
                    {
                        Err("the install ended with status 1 (simulated failure)".into())
                    }
                    SimulatedOutcome::Succeeds | SimulatedOutcome::Fails => Ok((
                        offer.version.clone(),
                        Running {
                            version: offer.version.clone(),
                            image_sha256: Some(offer.sha256.clone()),
                        },
                    )),
                    SimulatedOutcome::ClaimsOnly => Ok((offer.version.clone(), before)),
                }
            }
        }
    }

    /// Reports an install step. A report that does not arrive is logged, not fatal:
    /// the next poll tells the server what runs.
    pub(super) async fn report(&self, offer: &Offer, state: ReportState, version: Option<&str>, message: Option<&str>) {
        let sent = async {
            let body = Report {
                patch_id: offer.patch_id.clone(),
                state,
                version: version.map(str::to_owned),
                message: message.map(str::to_owned),
            };
            let response = self
                .http
                .post(self.url("/api/v1/device/report")?)
                .header(AUTHORIZATION, format!("Bearer {}", self.token()?))
                .json(&body)
                .send()
                .await?;
            answer::<serde_json::Value>(response, "the report").await.map(|_| ())
        };
        if let Err(e) = sent.await {
            tracing::warn!(patch = %offer.patch_id, state = state.as_str(), "report not delivered: {e:#}");
        }
    }

    pub(super) fn part_path(&self, offer: &Offer) -> PathBuf {
        let safe: String = offer
            .patch_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        self.config.download_dir.join(format!("{safe}.part"))
    }
}
