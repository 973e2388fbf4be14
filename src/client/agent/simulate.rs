//! A simulated fleet: N devices in one process, each a real [`Agent`] with its own
//! identity, state file, version, image hash and pull endpoint (`/d/{n}` on one
//! listener), behaving as the mix says — honest, installing slowly, failing the
//! install, claiming an install while keeping the old version, going silent, or
//! running an image no release explains. For tests, demos and load.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::pull::{self, Answer, Directory};
use super::{
    http_client, Agent, AgentConfig, Freshness, Installer, Outcome, Running, SimulatedInstall, SimulatedOutcome,
};

/// How a simulated device behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    Honest,
    Slow,
    FailsInstall,
    ClaimsOnly,
    Silent,
    UnknownImage,
}

impl Behaviour {
    const ALL: [Behaviour; 6] = [
        Behaviour::Honest,
        Behaviour::Slow,
        Behaviour::FailsInstall,
        Behaviour::ClaimsOnly,
        Behaviour::Silent,
        Behaviour::UnknownImage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Honest => "honest",
            Behaviour::Slow => "slow",
            Behaviour::FailsInstall => "fails_install",
            Behaviour::ClaimsOnly => "claims_only",
            Behaviour::Silent => "silent",
            Behaviour::UnknownImage => "unknown_image",
        }
    }
}

/// Shares of each behaviour, like `honest=80,slow=5,fails_install=5,claims_only=4,silent=3,unknown_image=3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix(Vec<(Behaviour, u32)>);

impl Default for Mix {
    fn default() -> Mix {
        Mix(vec![(Behaviour::Honest, 1)])
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(text: &str) -> Result<Mix, String> {
        let mut shares = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, share) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not behaviour=share"))?;
            let behaviour = Behaviour::ALL
                .into_iter()
                .find(|b| b.as_str() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<_> = Behaviour::ALL.iter().map(|b| b.as_str()).collect();
                    format!("`{name}` is not a behaviour; they are {}", names.join(", "))
                })?;
            let share: u32 = share
                .trim()
                .parse()
                .map_err(|_| format!("the share of {name} is not a whole number: `{share}`"))?;
            shares.push((behaviour, share));
        }
        if shares.iter().map(|s| s.1).sum::<u32>() == 0 {
            return Err("the mix gives no device a behaviour".into());
        }
        Ok(Mix(shares))
    }
}

impl Mix {
    /// The behaviour of device `n`. Every run of `total` devices holds each share
    /// exactly; the positions are spread through the run (a stride coprime to the
    /// total), so a small fleet gets a bit of every behaviour too.
    pub fn of(&self, n: usize) -> Behaviour {
        let total: u32 = self.0.iter().map(|s| s.1).sum();
        let stride = (total * 5 / 8..=total)
            .find(|s| *s > 0 && gcd(*s, total) == 1)
            .unwrap_or(1);
        let mut at = ((n as u64 * u64::from(stride)) % u64::from(total)) as u32;
        for (behaviour, share) in &self.0 {
            if at < *share {
                return *behaviour;
            }
            at -= share;
        }
        Behaviour::Honest
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The image a simulated device of `version` runs: what a release image
/// registration must name for it to count as explained.
pub fn release_image(product: &str, version: &str) -> String {
    hex::encode(Sha256::digest(format!(
        "patchwarden simulated image {product} {version}"
    )))
}

/// The fleet to simulate.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// Server, product, platform, enrolment token, pinned keys: shared by all.
    pub base: AgentConfig,
    pub count: usize,
    /// Versions handed out in turn.
    pub versions: Vec<String>,
    pub mix: Mix,
    /// One folder per device for its state and downloads.
    pub work_dir: PathBuf,
    /// Where the pull endpoints listen, and the URL the server reaches them by
    /// (`None`: `http://` and the address the listener got).
    pub pull: Option<(SocketAddr, Option<String>)>,
    pub slow_install: Duration,
    /// Devices start spread over this time, so they do not all enrol at once.
    pub start_spread: Duration,
    /// When not empty, `fails_install` devices fail only installs of these versions.
    pub fails_only: Vec<String>,
}

/// What the fleet has done so far.
#[derive(Debug, Default)]
pub struct Stats {
    pub enrolled: AtomicU64,
    pub polls: AtomicU64,
    pub poll_errors: AtomicU64,
    /// Devices that have been offered an update at least once.
    pub offered: AtomicU64,
    /// When the last device to be offered one first was (Unix milliseconds).
    pub last_first_offer_ms: AtomicU64,
    pub installed: AtomicU64,
    pub last_install_ms: AtomicU64,
    pub install_failed: AtomicU64,
    pub refused: AtomicU64,
    /// Installs that waited for a maintenance window (downloaded, verified, kept).
    pub deferred: AtomicU64,
    /// Of the polls that brought devices their first offer: the most one began
    /// after the interval its device waited had ended (milliseconds), which is the
    /// simulator's own lateness when its devices share busy cores…
    pub first_offer_late_max_ms: AtomicU64,
    /// …and the longest one took, answer checked (milliseconds; with a proof
    /// fetched when the answer carries none from the head the device holds).
    pub first_offer_poll_max_ms: AtomicU64,
}

/// The numbers of [`Stats`] at one moment.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    pub devices: u64,
    pub enrolled: u64,
    pub polls: u64,
    pub poll_errors: u64,
    pub offered: u64,
    pub last_first_offer_ms: u64,
    pub installed: u64,
    pub last_install_ms: u64,
    pub install_failed: u64,
    pub refused: u64,
    pub deferred: u64,
    pub first_offer_late_max_ms: u64,
    pub first_offer_poll_max_ms: u64,
    pub behaviours: HashMap<Behaviour, u64>,
}

/// A running simulated fleet. Dropping it stops every device.
pub struct Fleet {
    stats: Arc<Stats>,
    count: usize,
    behaviours: HashMap<Behaviour, u64>,
    tasks: tokio::task::JoinSet<()>,
    pub pull_address: Option<SocketAddr>,
}

impl Fleet {
    pub fn snapshot(&self) -> Snapshot {
        snapshot(&self.stats, self.count, &self.behaviours)
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Stops every device.
    pub fn stop(&mut self) {
        self.tasks.abort_all();
    }
}

fn snapshot(stats: &Stats, count: usize, behaviours: &HashMap<Behaviour, u64>) -> Snapshot {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    Snapshot {
        devices: count as u64,
        enrolled: load(&stats.enrolled),
        polls: load(&stats.polls),
        poll_errors: load(&stats.poll_errors),
        offered: load(&stats.offered),
        last_first_offer_ms: load(&stats.last_first_offer_ms),
        installed: load(&stats.installed),
        last_install_ms: load(&stats.last_install_ms),
        install_failed: load(&stats.install_failed),
        refused: load(&stats.refused),
        deferred: load(&stats.deferred),
        first_offer_late_max_ms: load(&stats.first_offer_late_max_ms),
        first_offer_poll_max_ms: load(&stats.first_offer_poll_max_ms),
        behaviours: behaviours.clone(),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One simulated device as its pull endpoint sees it.
#[derive(Default)]
struct Slot {
    running: OnceLock<Arc<RwLock<Running>>>,
    freshness: OnceLock<Arc<RwLock<Freshness>>>,
    silent: AtomicBool,
}

struct FleetDirectory {
    slots: Vec<Slot>,
    token: Option<Arc<str>>,
    stats: Arc<Stats>,
    behaviours: HashMap<Behaviour, u64>,
}

impl Directory for FleetDirectory {
    fn lookup(&self, path: &str) -> Option<Answer> {
        if path == "/stats" {
            let body = serde_json::to_string(&snapshot(&self.stats, self.slots.len(), &self.behaviours)).ok()?;
            return Some(Answer::Json(body));
        }
        let n: usize = path.strip_prefix("/d/")?.parse().ok()?;
        let slot = self.slots.get(n)?;
        if slot.silent.load(Ordering::Relaxed) {
            return Some(Answer::Silent);
        }
        Some(Answer::Device {
            reading: Running::of(slot.running.get()?).pulled(Freshness::of(slot.freshness.get()?)),
            token: self.token.clone(),
        })
    }
}

/// Starts the fleet: binds the pull listener (when asked), then each device in its
/// own task.
pub async fn start(spec: FleetSpec) -> anyhow::Result<Fleet> {
    if spec.count == 0 {
        bail!("a simulated fleet needs at least one device");
    }
    if spec.versions.is_empty() {
        bail!("a simulated fleet needs at least one version");
    }
    std::fs::create_dir_all(&spec.work_dir).with_context(|| format!("creating {}", spec.work_dir.display()))?;
    let stats = Arc::new(Stats::default());
    let mut behaviours = HashMap::new();
    for n in 0..spec.count {
        *behaviours.entry(spec.mix.of(n)).or_insert(0) += 1;
    }
    let directory = Arc::new(FleetDirectory {
        slots: (0..spec.count).map(|_| Slot::default()).collect(),
        token: spec.base.pull_token.as_deref().map(Arc::from),
        stats: stats.clone(),
        behaviours: behaviours.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    let mut pull_address = None;
    let mut spec = spec;
    if let Some((listen, base)) = &mut spec.pull {
        let listener = tokio::net::TcpListener::bind(*listen)
            .await
            .with_context(|| format!("listening for pulls on {listen}"))?;
        let bound = listener.local_addr()?;
        pull_address = Some(bound);
        base.get_or_insert_with(|| format!("http://{bound}"));
        tasks.spawn(pull::serve(listener, directory.clone()));
    }
    let spec = Arc::new(spec);
    let http = http_client(&spec.base)?;
    for n in 0..spec.count {
        let (spec, stats, directory, http) = (spec.clone(), stats.clone(), directory.clone(), http.clone());
        tasks.spawn(async move {
            if let Err(e) = device(n, &spec, &stats, &directory, http).await {
                tracing::warn!(device = n, "simulated device stopped: {e:#}");
            }
        });
    }
    Ok(Fleet {
        stats,
        count: spec.count,
        behaviours,
        tasks,
        pull_address,
    })
}

/// The configuration of simulated device `n`.
fn config_of(n: usize, spec: &FleetSpec, behaviour: Behaviour) -> AgentConfig {
    let mut config = spec.base.clone();
    let dir = spec.work_dir.join(format!("{n:06}"));
    config.name = format!("{}-{n:05}", spec.base.name);
    config.version = spec.versions[n % spec.versions.len()].clone();
    config.image_sha256 = Some(match behaviour {
        Behaviour::UnknownImage => hex::encode(Sha256::digest(format!("unexplained image of device {n}"))),
        _ => release_image(&config.product, &config.version),
    });
    config.image_file = None;
    config.state_file = dir.join("state.json");
    config.download_dir = dir.join("downloads");
    config.pull_listen = None;
    config.pull_url = spec
        .pull
        .as_ref()
        .and_then(|(_, base)| base.as_deref())
        .map(|base| format!("{}/d/{n}", base.trim_end_matches('/')));
    config.installer = Installer::Simulated(SimulatedInstall {
        duration: match behaviour {
            Behaviour::Slow => spec.slow_install,
            _ => Duration::from_millis(50),
        },
        outcome: match behaviour {
            Behaviour::FailsInstall => SimulatedOutcome::Fails,
            Behaviour::ClaimsOnly => SimulatedOutcome::ClaimsOnly,
            _ => SimulatedOutcome::Succeeds,
        },
        fails_only: spec.fails_only.clone(),
    });
    config
}

async fn device(
    n: usize,
    spec: &FleetSpec,
    stats: &Stats,
    directory: &FleetDirectory,
    http: reqwest::Client,
) -> anyhow::Result<()> {
    let behaviour = spec.mix.of(n);
    let delay = spec.start_spread.mul_f64(n as f64 / spec.count as f64);
    tokio::time::sleep(delay).await;
    let mut attempts = 0;
    let mut agent = loop {
        match Agent::start_with(config_of(n, spec, behaviour), http.clone()).await {
            Ok(agent) => break agent,
            Err(e) => {
                attempts += 1;
                if attempts == 1 {
                    tracing::warn!(device = n, "enrolment failed, trying again every 2 s: {e:#}");
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    stats.enrolled.fetch_add(1, Ordering::Relaxed);
    let slot = &directory.slots[n];
    let _ = slot.running.set(agent.running_handle());
    let _ = slot.freshness.set(agent.freshness_handle());
    let mut offered = false;
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let began = tokio::time::Instant::now();
        let late = due.map_or(0, |due| began.saturating_duration_since(due).as_millis() as u64);
        let polled = agent.poll().await;
        let took = began.elapsed().as_millis() as u64;
        let polled = match polled {
            Ok(polled) => polled,
            Err(e) => {
                stats.poll_errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(device = n, "poll failed: {e:#}");
                due = None;
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        stats.polls.fetch_add(1, Ordering::Relaxed);
        if behaviour == Behaviour::Silent {
            // Seen once, then never again: no polls, no answers to pulls.
            slot.silent.store(true, Ordering::Relaxed);
            return Ok(());
        }
        let mut wait = polled.interval;
        if let Some(offer) = &polled.offer {
            if !offered {
                offered = true;
                stats.offered.fetch_add(1, Ordering::Relaxed);
                stats.last_first_offer_ms.fetch_max(now_ms(), Ordering::Relaxed);
                stats.first_offer_late_max_ms.fetch_max(late, Ordering::Relaxed);
                stats.first_offer_poll_max_ms.fetch_max(took, Ordering::Relaxed);
            }
            if !agent.settled(offer) {
                match agent.apply(offer).await? {
                    Outcome::Installed { .. } => {
                        stats.installed.fetch_add(1, Ordering::Relaxed);
                        stats.last_install_ms.fetch_max(now_ms(), Ordering::Relaxed);
                        // Back from the install: say at once what runs now.
                        wait = Duration::ZERO;
                    }
                    Outcome::InstallFailed(_) => {
                        stats.install_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Refused(_) => {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    Outcome::Interrupted(_) => wait = wait.min(Duration::from_secs(5)),
                    Outcome::Deferred(_) => {
                        stats.deferred.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        due = Some(tokio::time::Instant::now() + wait);
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_deals_its_shares_in_turn_and_names_what_it_refuses() {
        let mix: Mix = "honest=2, slow=1,silent=1".parse().unwrap();
        let dealt: Vec<_> = (0..8).map(|n| mix.of(n)).collect();
        assert_eq!(
            dealt,
            [
                Behaviour::Honest,
                Behaviour::Silent,
                Behaviour::Slow,
                Behaviour::Honest,
                Behaviour::Honest,
                Behaviour::Silent,
                Behaviour::Slow,
                Behaviour::Honest
            ]
        );
        // Every run of 100 holds the shares exactly, and the first 30 already show
        // each behaviour.
        let mix: Mix = "honest=84,slow=6,fails_install=3,claims_only=3,silent=2,unknown_image=2"
            .parse()
            .unwrap();
        for start in [0, 37, 100] {
            let count = |b| (start..start + 100).filter(|n| mix.of(*n) == b).count();
            assert_eq!(
                [
                    count(Behaviour::Honest),
                    count(Behaviour::Slow),
                    count(Behaviour::Silent)
                ],
                [84, 6, 2]
            );
        }
        let first: std::collections::HashSet<_> = (0..30).map(|n| mix.of(n)).collect();
        assert!(first.len() >= 4, "{first:?}");
        assert!("lazy=1".parse::<Mix>().unwrap_err().contains("not a behaviour"));
        assert!("honest=x".parse::<Mix>().unwrap_err().contains("not a whole number"));
        assert!("honest=0".parse::<Mix>().unwrap_err().contains("no device"));
    }
}
