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

mod answers;
mod apply;
pub mod config;
pub mod download;
mod head;
mod offline;
pub mod pull;
mod running;
pub mod simulate;
pub mod state;
pub mod verify;

pub use answers::{http_client, MAX_ANSWER_BYTES};
pub use offline::OfflineOutcome;
pub use running::{Freshness, Running};

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use reqwest::header::AUTHORIZATION;
use reqwest::StatusCode;
use url::Url;

pub use config::{AgentConfig, AgentLimits, Identity, Installer, SimulatedInstall, SimulatedOutcome};
pub use state::AgentState;

use crate::api::device::{Enrolled, Enrolment, Offer, Poll, PollResponse};
use crate::domain::log::{revocations_digest, Revocation, TreeHead};
use crate::domain::ReportState;
use answers::{answer, retry_after};
use download::Fetched;
use verify::Keyring;

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
    /// Downloaded and verified; the device's maintenance window opens at this time,
    /// and the install waits for it.
    Deferred(chrono::DateTime<chrono::Utc>),
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
        let mut agent = Agent::open(config, http)?;
        if agent.state.device_token.is_none() {
            agent.enrol().await?;
        }
        agent.save()?;
        Ok(agent)
    }

    /// Loads the state and the keys, reaching no server (it does not enrol).
    pub fn open(config: AgentConfig, http: reqwest::Client) -> anyhow::Result<Agent> {
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
                if let Some(offer) = answer.offer() {
                    self.report(offer, ReportState::Failed, None, Some(&why)).await;
                }
                return Ok(Asked::Refused(why));
            }
        };
        // The yanked patches, when the list the answer carries is the one the head
        // commits to; otherwise none are known, and no offer is taken.
        self.revoked = match (&answer.revoked, head.revoked) {
            (Some(list), Some(digest)) if revocations_digest(list) == digest => Some(list.to_vec()),
            _ => None,
        };
        self.forget_untrusted_download(answer.offer()).await?;
        let limits = &self.config.limits;
        let mut interval = limits.clamp(Duration::from_secs(answer.poll_interval_s));
        // Never past the expiry the vendor signed into the head held: the device asks
        // again while that head is still good.
        if let Ok(left) = (head.expires_at - now).to_std() {
            interval = interval.min(left.max(limits.poll_min));
        }
        Ok(Asked::Accepted {
            offer: answer.update.flatten().map(Box::new),
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
                    Outcome::Refused(_) | Outcome::InstallFailed(_) | Outcome::Deferred(_) => {}
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
