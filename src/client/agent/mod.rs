//! The reference device agent: enrols (or uses a device token), polls, downloads an
//! offered patch (resuming an interrupted download), verifies it before anything
//! else happens — signature by a pinned key or one a pinned key introduced, trusted
//! comment against the offer and the device, size and sha256 — and only then
//! installs it, reporting each step. It serves the pull endpoint, and keeps its
//! state in a small file replaced atomically, so a restart goes on where it stopped.
//!
//! It acts only on what a vendor signature or the log covers. An answer whose tree
//! head is missing, untrusted, expired, older or forked is refused and changes
//! nothing: the next poll comes at the agent's own backoff, not at the interval the
//! answer named. An accepted answer's interval (and any `Retry-After`) is held
//! within `poll_min`..`poll_max` and never past the expiry of the head it holds, so
//! no answer can make a device stop asking. A device that has held no genuine head
//! for `stale_after` says so: in its log at every poll, in its polls, and in its
//! pull answers. Every answer body is read up to [`MAX_ANSWER_BYTES`].

pub mod config;
pub mod download;
pub mod pull;
pub mod simulate;
pub mod state;
pub mod verify;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;
use url::Url;

pub use config::{AgentConfig, AgentLimits, Identity, Installer, SimulatedInstall, SimulatedOutcome};
pub use state::AgentState;

use crate::api::device::{Enrolled, Enrolment, KeyResponse, Offer, Poll, PollResponse, Pulled, Report};
use crate::api::log::{parse_proof, ConsistencyProof, SignedHead};
use crate::domain::log::{revocations_digest, Revocation, TreeHead};
use crate::domain::merkle::verify_consistency;
use crate::domain::ReportState;
use download::{DownloadError, Fetched};
use state::Pending;
use verify::{Expected, Keyring, Refusal, Verified};

/// The most bytes of any answer (poll, keys, proofs, enrolment, report) the agent
/// reads; a longer one is refused without being held whole.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// What the device runs, shared with its pull endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub version: String,
    pub image_sha256: Option<String>,
}

impl Running {
    /// What `shared` holds now.
    pub fn of(shared: &RwLock<Running>) -> Running {
        shared
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// As a pull answers it, with how fresh the device's view of the log is.
    pub fn pulled(self, freshness: Freshness) -> Pulled {
        let now = chrono::Utc::now();
        Pulled {
            version: self.version,
            image_sha256: self.image_sha256,
            head_age_s: freshness.head_age_s(now),
            stale: Some(freshness.stale(now)),
        }
    }
}

/// How fresh the genuine answers a device gets are: when the newest tree head it
/// holds was signed, against its `stale_after`. Shared with its pull endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// When the newest genuine head held was signed; `None` before the first.
    pub head_signed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the agent started: a device that never got a genuine head counts from then.
    pub since: chrono::DateTime<chrono::Utc>,
    pub stale_after: Duration,
}

impl Freshness {
    /// What `shared` holds now.
    pub fn of(shared: &RwLock<Freshness>) -> Freshness {
        *shared.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The age of the newest genuine head, in seconds, at `now`.
    pub fn head_age_s(&self, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
        self.head_signed_at
            .map(|at| u64::try_from((now - at).num_seconds()).unwrap_or(0))
    }

    /// Whether the device has gone `stale_after` without a genuine head at `now`.
    pub fn stale(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let from = self.head_signed_at.unwrap_or(self.since);
        (now - from).to_std().is_ok_and(|age| age > self.stale_after)
    }
}

/// What one poll brought.
#[derive(Clone, Debug)]
pub struct Polled {
    pub offer: Option<Offer>,
    /// How long to wait before the next poll: the answer's interval within the
    /// agent's bounds, or, for a refused answer, the agent's own backoff.
    pub interval: Duration,
    /// Why the answer was refused (its tree head missing, older, expired or
    /// forked): then there is no offer.
    pub refused: Option<String>,
}

/// What a poll's answer was, before the agent chose its wait.
enum Asked {
    Accepted {
        offer: Option<Box<Offer>>,
        interval: Duration,
    },
    Refused(String),
    /// `429`, with the wait it asked for.
    Throttled(Option<Duration>),
}

/// How handling an offer ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Verified and installed; `running` is what the device runs now.
    Installed { fetched: Fetched, running: Running },
    /// The download failed verification: nothing was installed and the file is gone.
    Refused(String),
    /// The install command failed.
    InstallFailed(String),
    /// The transfer stopped; the partial file is kept and the next attempt resumes.
    Interrupted(String),
}

pub struct Agent {
    config: AgentConfig,
    http: reqwest::Client,
    state: AgentState,
    keyring: Keyring,
    running: Arc<RwLock<Running>>,
    /// Offers already installed, refused or failed, by patch and signature: not
    /// tried again (a device whose install did not take shows on the server as
    /// claimed but not running, instead of installing in a loop).
    settled: Vec<(String, String)>,
    /// The accepted tree head, verified.
    head: Option<TreeHead>,
    /// The yanked patches the accepted head commits to, when its answer carried
    /// them (answers that offer a patch do).
    revoked: Option<Vec<Revocation>>,
    freshness: Arc<RwLock<Freshness>>,
    /// Polls in a row that were refused or failed: the backoff's exponent.
    failures: u32,
}

impl Agent {
    /// Loads the state, and enrols when the device has no identity yet.
    pub async fn start(config: AgentConfig) -> anyhow::Result<Agent> {
        let http = http_client(&config)?;
        Agent::start_with(config, http).await
    }

    /// Like [`Agent::start`], with an HTTP client that other agents may share (the
    /// simulated fleet: one connection pool and TLS setup for all its devices).
    pub async fn start_with(config: AgentConfig, http: reqwest::Client) -> anyhow::Result<Agent> {
        config.check()?;
        let mut state = AgentState::load(&config.state_file)?;
        let keyring = Keyring::new(&config.pinned_keys, &state.learnt_keys).map_err(anyhow::Error::msg)?;
        if state.version.is_none() {
            state.version = Some(config.version.clone());
            state.image_sha256 = match &config.image_file {
                Some(image) => {
                    Some(verify::sha256_file(image).with_context(|| format!("hashing {}", image.display()))?)
                }
                None => config.image_sha256.clone(),
            };
        }
        if let (None, Identity::Token { id, token }) = (&state.device_token, &config.identity) {
            state.device_id = id.clone();
            state.device_token = Some(token.clone());
        }
        let running = Arc::new(RwLock::new(Running {
            version: state.version.clone().unwrap_or_else(|| config.version.clone()),
            image_sha256: state.image_sha256.clone(),
        }));
        let freshness = Arc::new(RwLock::new(Freshness {
            head_signed_at: None,
            since: chrono::Utc::now(),
            stale_after: config.limits.stale_after,
        }));
        let mut agent = Agent {
            config,
            http,
            state,
            keyring,
            running,
            settled: Vec::new(),
            head: None,
            revoked: None,
            freshness,
            failures: 0,
        };
        if let Some(held) = &agent.state.log_head {
            let head = held
                .verify(|id| agent.keyring.public_key(id))
                .map_err(|e| anyhow::anyhow!("the tree head in the agent state does not verify: {e}"))?;
            agent.set_fresh(head.timestamp);
            agent.head = Some(head);
        }
        if agent.state.device_token.is_none() {
            agent.enrol().await?;
        }
        agent.save()?;
        Ok(agent)
    }

    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    pub fn device_id(&self) -> Option<&str> {
        self.state.device_id.as_deref()
    }

    /// What the device runs, as its pull endpoint reports it.
    pub fn running(&self) -> Running {
        Running::of(&self.running)
    }

    pub fn running_handle(&self) -> Arc<RwLock<Running>> {
        self.running.clone()
    }

    /// How fresh this device's view of the log is, shared with its pull endpoint.
    pub fn freshness_handle(&self) -> Arc<RwLock<Freshness>> {
        self.freshness.clone()
    }

    /// How fresh this device's view of the log is now.
    pub fn freshness(&self) -> Freshness {
        Freshness::of(&self.freshness)
    }

    fn set_fresh(&self, signed_at: chrono::DateTime<chrono::Utc>) {
        let mut freshness = self.freshness.write().unwrap_or_else(|e| e.into_inner());
        freshness.head_signed_at = Some(freshness.head_signed_at.map_or(signed_at, |held| held.max(signed_at)));
    }

    /// The agent's own wait after the refused or failed polls so far.
    pub fn retry_interval(&self) -> Duration {
        self.config.limits.backoff(self.failures.max(1))
    }

    fn save(&self) -> anyhow::Result<()> {
        self.state.save(&self.config.state_file)
    }

    fn token(&self) -> anyhow::Result<&str> {
        self.state.device_token.as_deref().context("the device has no token")
    }

    fn url(&self, path: &str) -> anyhow::Result<Url> {
        self.config
            .server
            .join(path)
            .with_context(|| format!("`{path}` is not a URL"))
    }

    async fn enrol(&mut self) -> anyhow::Result<()> {
        let Identity::Enrol(enrollment_token) = &self.config.identity else {
            bail!("the device has no token and no enrollment token");
        };
        let running = self.running();
        let body = Enrolment {
            enrollment_token: enrollment_token.clone(),
            name: self.config.name.clone(),
            product: self.config.product.clone(),
            platform: self.config.platform.clone(),
            version: running.version,
            labels: Default::default(),
            pull_url: self.config.pull_url.clone(),
            pull_token: self.config.pull_token.clone(),
        };
        let mut wait = Duration::from_secs(1);
        loop {
            let response = self
                .http
                .post(self.url("/api/v1/device/enroll")?)
                .json(&body)
                .send()
                .await
                .context("enrolling")?;
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                let retry = self.config.limits.clamp(retry_after(&response).unwrap_or(wait));
                tokio::time::sleep(retry).await;
                wait = (wait * 2).min(Duration::from_secs(60));
                continue;
            }
            let enrolled: Enrolled = answer(response, "enrolment").await?;
            tracing::info!(device.id = %enrolled.id, "enrolled");
            self.state.device_id = Some(enrolled.id);
            self.state.device_token = Some(enrolled.token);
            return Ok(());
        }
    }

    /// Asks the server whether there is an update, saying what the device runs and
    /// how fresh its view of the log is. The wait it returns is the answer's interval
    /// within the agent's bounds, or the agent's own backoff when the answer was
    /// refused; a failed poll counts towards that backoff too.
    pub async fn poll(&mut self) -> anyhow::Result<Polled> {
        let asked = self.ask().await;
        self.failures = match &asked {
            Ok(Asked::Accepted { .. } | Asked::Throttled(_)) => 0,
            Ok(Asked::Refused(_)) | Err(_) => self.failures.saturating_add(1),
        };
        Ok(match asked? {
            Asked::Accepted { offer, interval } => Polled {
                offer: offer.map(|o| *o),
                interval,
                refused: None,
            },
            Asked::Refused(why) => Polled {
                offer: None,
                interval: self.retry_interval(),
                refused: Some(why),
            },
            Asked::Throttled(wait) => Polled {
                offer: None,
                interval: self.config.limits.clamp(wait.unwrap_or_else(|| self.retry_interval())),
                refused: None,
            },
        })
    }

    async fn ask(&mut self) -> anyhow::Result<Asked> {
        let running = self.running();
        let now = chrono::Utc::now();
        let freshness = self.freshness();
        let stale = freshness.stale(now);
        let head_age_s = freshness.head_age_s(now);
        if stale {
            tracing::error!(
                head_age_s,
                stale_after_s = freshness.stale_after.as_secs(),
                "STALE: no genuine tree head for longer than stale_after; this device may be cut off from genuine answers"
            );
        }
        let body = Poll {
            version: running.version,
            image_sha256: running.image_sha256,
            platform: self.config.platform.clone(),
            log_size: self.head.as_ref().map(|h| h.tree_size),
            head_age_s,
            stale: Some(stale),
            ..Poll::default()
        };
        let response = self
            .http
            .post(self.url("/api/v1/device/poll")?)
            .header(AUTHORIZATION, format!("Bearer {}", self.token()?))
            .json(&body)
            .send()
            .await
            .context("polling")?;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            return Ok(Asked::Throttled(retry_after(&response)));
        }
        let answer: PollResponse = answer(response, "the poll").await?;
        let head = match self.accept_head(&answer).await? {
            Ok(head) => head,
            Err(why) => {
                tracing::warn!("refused the poll answer: {why}");
                if let Some(offer) = &answer.update {
                    self.report(offer, ReportState::Failed, None, Some(&why)).await;
                }
                return Ok(Asked::Refused(why));
            }
        };
        // The yanked patches, when the list the answer carries is the one the head
        // commits to; otherwise none are known, and no offer is taken.
        self.revoked = match (&answer.revoked, head.revoked) {
            (Some(list), Some(digest)) if revocations_digest(list) == digest => Some(list.clone()),
            _ => None,
        };
        self.forget_untrusted_download(answer.update.as_ref()).await?;
        let limits = &self.config.limits;
        let mut interval = limits.clamp(Duration::from_secs(answer.poll_interval_s));
        // Never past the expiry the vendor signed into the head held: the device asks
        // again while that head is still good.
        if let Ok(left) = (head.expires_at - now).to_std() {
            interval = interval.min(left.max(limits.poll_min));
        }
        Ok(Asked::Accepted {
            offer: answer.update.map(Box::new),
            interval,
        })
    }

    /// Gives up a download in progress that the newest genuine answer no longer
    /// offers (a yanked patch, a replaced offer): its partial file goes.
    async fn forget_untrusted_download(&mut self, offered: Option<&Offer>) -> anyhow::Result<()> {
        let Some(pending) = &self.state.pending else {
            return Ok(());
        };
        if offered.is_some_and(|offer| same_file(&pending.offer, offer)) {
            return Ok(());
        }
        let part = self.part_path(&pending.offer);
        tracing::info!(patch = %pending.offer.patch_id, "no longer offered: the partial download goes");
        remove_if_present(&part).await?;
        self.state.pending = None;
        self.save()
    }

    /// The newest tree head this agent accepted, verified.
    pub fn head(&self) -> Option<&TreeHead> {
        self.head.as_ref()
    }

    /// Checks the tree head of a poll answer against the one held: signed by a
    /// trusted key that was not declared compromised before this size, not expired
    /// (a frozen answer), not older (a rollback), and consistent with the one held
    /// (not a fork). Keeps it when it is good; returns why it is refused otherwise.
    async fn accept_head(&mut self, answer: &PollResponse) -> anyhow::Result<Result<TreeHead, String>> {
        let Some(signed) = &answer.log_head else {
            return Ok(Err("refused: the answer carries no signed tree head".into()));
        };
        let mut verified = signed.verify(|id| self.keyring.public_key(id));
        if verified.as_ref().is_err_and(|e| e.contains("not trusted")) && self.learn_keys().await? {
            verified = signed.verify(|id| self.keyring.public_key(id));
        }
        let head = match verified {
            Ok(head) => head,
            Err(why) => return Ok(Err(format!("refused: {why}"))),
        };
        if let Some(after) = self.keyring.compromised_after(&signed.key_id) {
            if head.tree_size > after {
                return Ok(Err(format!(
                    "refused (compromised key): the tree head of {} entries is signed by key {}, which a rotation \
                     declared compromised after {after} entries",
                    head.tree_size,
                    signed.key_id.to_uppercase()
                )));
            }
        }
        if head.expires_at <= chrono::Utc::now() {
            return Ok(Err(format!(
                "refused (freeze): the tree head of sequence {} expired at {}",
                head.sequence,
                head.expires_at.to_rfc3339()
            )));
        }
        if let Some(held) = &self.head {
            if let Err(why) = self.follows(held, &head, signed, answer).await? {
                return Ok(Err(why));
            }
        }
        if self.state.log_head.as_ref() != Some(signed) {
            self.state.log_head = Some(signed.clone());
            self.save()?;
        }
        self.set_fresh(head.timestamp);
        self.head = Some(head.clone());
        Ok(Ok(head))
    }

    /// Whether `head` may follow `held`: the same or a later sequence, no fewer
    /// entries, and a consistency proof from `held` when it has more.
    async fn follows(
        &self,
        held: &TreeHead,
        head: &TreeHead,
        signed: &SignedHead,
        polled: &PollResponse,
    ) -> anyhow::Result<Result<(), String>> {
        if head.origin != held.origin {
            return Ok(Err(format!(
                "refused (fork): the tree head is of log `{}`, not of `{}`",
                head.origin, held.origin
            )));
        }
        if head.sequence < held.sequence || head.tree_size < held.tree_size {
            return Ok(Err(format!(
                "refused (rollback): the tree head (sequence {}, {} entries) is older than the one already seen (sequence {}, {} entries)",
                head.sequence, head.tree_size, held.sequence, held.tree_size
            )));
        }
        if head.sequence == held.sequence && (head != held || self.state.log_head.as_ref() != Some(signed)) {
            return Ok(Err(format!(
                "refused (fork): two different tree heads carry sequence {}",
                head.sequence
            )));
        }
        if head.tree_size == held.tree_size {
            if head.root_hash != held.root_hash {
                return Ok(Err(format!(
                    "refused (fork): a tree of {} entries with another root hash than the one already seen",
                    head.tree_size
                )));
            }
            return Ok(Ok(()));
        }
        let proof = match polled
            .log_consistency
            .as_ref()
            .filter(|p| p.from == held.tree_size && p.to == head.tree_size)
        {
            Some(proof) => proof.clone(),
            None => {
                let url = self.url(&format!(
                    "/api/v1/log/proof/consistency?from={}&to={}",
                    held.tree_size, head.tree_size
                ))?;
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .context("fetching a consistency proof")?;
                let proof: ConsistencyProof = answer(response, "the consistency proof").await?;
                proof
            }
        };
        let checked = parse_proof(&proof.proof).and_then(|hashes| {
            verify_consistency(
                held.tree_size,
                head.tree_size,
                &held.root_hash,
                &head.root_hash,
                &hashes,
            )
            .map_err(|e| e.to_string())
        });
        Ok(checked.map_err(|why| {
            format!(
                "refused (fork): the tree of {} entries does not extend the one of {} already seen: {why}",
                head.tree_size, held.tree_size
            )
        }))
    }

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
        self.report(offer, ReportState::Downloaded, None, None).await;
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
    fn expected<'a>(&'a self, running: &'a Running) -> Expected<'a> {
        Expected {
            product: &self.config.product,
            platform: self.config.platform.as_deref(),
            running: &running.version,
            scheme: self.config.version_scheme,
        }
    }

    /// Verifies a download of `offer` with the keys trusted now.
    fn check(&self, offer: &Offer, file: &Path) -> Result<(), Refusal> {
        let running = self.running();
        verify::check(&self.keyring, self.expected(&running), offer, file)
    }

    /// Checks `offer` against the log, the yanked patches and the running version,
    /// before downloading.
    fn check_offer(&self, offer: &Offer) -> Result<(), Refusal> {
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
    async fn refuse(&mut self, offer: &Offer, part: &Path, why: String) -> anyhow::Result<Outcome> {
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
    async fn install(&self, offer: &Offer, file: &Path) -> Result<(String, Running), String> {
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
                    SimulatedOutcome::Succeeds => Ok((
                        offer.version.clone(),
                        Running {
                            version: offer.version.clone(),
                            image_sha256: Some(offer.sha256.clone()),
                        },
                    )),
                    SimulatedOutcome::Fails => Err("the install ended with status 1 (simulated failure)".into()),
                    SimulatedOutcome::ClaimsOnly => Ok((offer.version.clone(), before)),
                }
            }
        }
    }

    /// Reports an install step. A report that does not arrive is logged, not fatal:
    /// the next poll tells the server what runs.
    async fn report(&self, offer: &Offer, state: ReportState, version: Option<&str>, message: Option<&str>) {
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

    fn part_path(&self, offer: &Offer) -> PathBuf {
        let safe: String = offer
            .patch_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        self.config.download_dir.join(format!("{safe}.part"))
    }

    /// Polls, applies what is offered, waits the interval the server gave; until
    /// `stop` resolves.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        if let Some(listen) = self.config.pull_listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening for pulls on {listen}"))?;
            tracing::info!(address = %listen, "serving pulls on /pull");
            tokio::spawn(self.pull_server(listener));
        }
        loop {
            let interval = match self.cycle().await {
                Ok(interval) => interval,
                Err(e) => {
                    tracing::warn!("{e:#}");
                    self.retry_interval()
                }
            };
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = &mut stop => return Ok(()),
            }
        }
    }

    /// Serves this device's pull endpoint, `GET /pull`, on `listener`.
    pub fn pull_server(
        &self,
        listener: tokio::net::TcpListener,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let directory = Arc::new(OneDevice {
            running: self.running.clone(),
            freshness: self.freshness.clone(),
            token: self.config.pull_token.as_deref().map(Arc::from),
        });
        pull::serve(listener, directory)
    }

    /// One poll and what follows from it; returns how long to wait.
    pub async fn cycle(&mut self) -> anyhow::Result<Duration> {
        let polled = self.poll().await?;
        if let Some(offer) = &polled.offer {
            if !self.settled(offer) {
                match self.apply(offer).await? {
                    Outcome::Interrupted(_) => {
                        let soon = polled.interval.min(Duration::from_secs(30));
                        return Ok(soon.max(self.config.limits.poll_min));
                    }
                    // Back from the install: say at once what runs now.
                    Outcome::Installed { .. } => return Ok(Duration::ZERO),
                    Outcome::Refused(_) | Outcome::InstallFailed(_) => {}
                }
            }
        }
        Ok(polled.interval)
    }
}

/// The pull endpoint of a single agent: `/pull`.
struct OneDevice {
    running: Arc<RwLock<Running>>,
    freshness: Arc<RwLock<Freshness>>,
    token: Option<Arc<str>>,
}

impl pull::Directory for OneDevice {
    fn lookup(&self, path: &str) -> Option<pull::Answer> {
        (path == "/pull").then(|| pull::Answer::Device {
            reading: Running::of(&self.running).pulled(Freshness::of(&self.freshness)),
            token: self.token.clone(),
        })
    }
}

/// Whether two offers are the same file from the same signer.
fn same_file(a: &Offer, b: &Offer) -> bool {
    a.patch_id == b.patch_id && a.sha256 == b.sha256 && a.size == b.size && a.signature == b.signature
}

async fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The agent's HTTP client: the configured timeout, no redirects followed.
pub fn http_client(config: &AgentConfig) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("patchwarden-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM: when an agent, a simulated fleet or
/// the demo should stop.
pub async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
}

/// Reads an answer's body up to [`MAX_ANSWER_BYTES`]; a longer one is refused as
/// soon as it announces or runs past that, without being read further.
async fn read_capped(mut response: reqwest::Response, what: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(length) = response.content_length().filter(|&l| l > MAX_ANSWER_BYTES as u64) {
        bail!("{what} announced {length} bytes, more than the {MAX_ANSWER_BYTES} an answer may have; refused unread");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.with_context(|| format!("reading {what}"))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            bail!("{what} ran past the {MAX_ANSWER_BYTES} bytes an answer may have; refused, not read further");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a JSON answer, or turns an error answer into a message naming `what`.
async fn answer<T: serde::de::DeserializeOwned>(response: reqwest::Response, what: &str) -> anyhow::Result<T> {
    let status = response.status();
    let bytes = read_capped(response, what).await?;
    if !status.is_success() {
        let message = serde_json::from_slice::<crate::api::ErrorResponse>(&bytes)
            .map(|e| e.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        bail!("{what} answered {status}: {message}");
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{what} answered JSON that is not understood"))
}
