//! The agent's configuration file (TOML). Paths in it are relative to the file.
//!
//! ```toml
//! server = "https://updates.example.com"
//! product = "screenos"
//! platform = "ssg-500"
//! name = "fw-berlin-01"
//! version = "6.3.0r20"                 # what runs before the agent installs anything
//! image_file = "/boot/firmware.img"     # hashed and reported as the running image (optional)
//! enrollment_token = "pwe_…"            # or device_token = "pwd_…"
//! public_keys = ["patchwarden.pub"]     # pinned minisign keys; at least one
//! state_file = "state.json"
//! download_dir = "downloads"
//! install_command = ["/usr/sbin/fw-install", "--reboot"]   # omitted: a simulated install
//! pull_listen = "0.0.0.0:9100"          # serves GET /pull (optional)
//! pull_url = "https://fw-berlin-01.example.com:9100/pull"  # announced at enrolment
//! pull_token = "…"                      # the bearer token a pull must carry
//! version_scheme = "vendor"             # how the product's versions order: vendor or semver
//! poll_min = "10s"                      # the shortest wait between polls, whatever an answer says
//! poll_max = "30m"                      # the longest; at most a tree head's lifetime
//! max_patch_bytes = 4294967296          # the largest patch downloaded
//! stale_after = "2h"                    # a newest genuine tree head older than this: stale
//! witness_policy = "witnesses.policy"    # a C2SP tlog-policy: heads need its quorum (optional)
//! witness_max_age = "1h"                # a cosignature older than this does not count
//! ```
//!
//! Nothing an answer says moves the agent outside these bounds: a poll interval or
//! `Retry-After` is clamped to `poll_min`..`poll_max`, a refused answer leaves the
//! agent's own schedule (a backoff from `poll_min`), and a patch larger than
//! `max_patch_bytes` is refused before a byte of it is written.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

use crate::domain::duration::parse_duration;
use crate::domain::policy::Policy;
use crate::domain::version::VersionScheme;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    server: String,
    product: String,
    #[serde(default)]
    platform: Option<String>,
    name: String,
    version: String,
    #[serde(default)]
    image_sha256: Option<String>,
    #[serde(default)]
    image_file: Option<PathBuf>,
    #[serde(default)]
    enrollment_token: Option<String>,
    #[serde(default)]
    device_token: Option<String>,
    #[serde(default)]
    device_id: Option<String>,
    public_keys: Vec<PathBuf>,
    state_file: PathBuf,
    download_dir: PathBuf,
    #[serde(default)]
    install_command: Option<Vec<String>>,
    #[serde(default)]
    simulated_install_seconds: Option<u64>,
    #[serde(default)]
    pull_listen: Option<SocketAddr>,
    #[serde(default)]
    pull_url: Option<String>,
    #[serde(default)]
    pull_token: Option<String>,
    #[serde(default)]
    request_timeout_seconds: Option<u64>,
    #[serde(default)]
    version_scheme: Option<String>,
    #[serde(default)]
    poll_min: Option<String>,
    #[serde(default)]
    poll_max: Option<String>,
    #[serde(default)]
    max_patch_bytes: Option<u64>,
    #[serde(default)]
    stale_after: Option<String>,
    #[serde(default)]
    witness_policy: Option<PathBuf>,
    #[serde(default)]
    witness_max_age: Option<String>,
}

/// What the agent requires of witnesses: a head counts only with cosignatures that
/// meet `policy`'s quorum, each at most `max_age` old.
#[derive(Clone, Debug)]
pub struct WitnessRequirement {
    pub policy: Policy,
    pub max_age: Duration,
}

/// The bounds the agent keeps whatever the answers it gets say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AgentLimits {
    /// The shortest wait between two polls.
    pub poll_min: Duration,
    /// The longest wait between two polls: a device asks again at least this often,
    /// so it notices a frozen or forked log within one tree head's lifetime.
    pub poll_max: Duration,
    /// The largest patch the agent downloads.
    pub max_patch_bytes: u64,
    /// How old the newest genuine tree head the agent holds may grow before the
    /// device says it is stale (cut off from genuine answers).
    pub stale_after: Duration,
}

impl Default for AgentLimits {
    /// A poll at least every 30 minutes (heads live an hour), never more often than
    /// every 10 seconds; patches up to 4 GiB; stale after two hours without a
    /// genuine head.
    fn default() -> Self {
        AgentLimits {
            poll_min: Duration::from_secs(10),
            poll_max: Duration::from_secs(30 * 60),
            max_patch_bytes: 4 << 30,
            stale_after: Duration::from_secs(2 * 3600),
        }
    }
}

impl AgentLimits {
    /// A wait an answer asked for, brought within `poll_min`..`poll_max`.
    pub fn clamp(&self, asked: Duration) -> Duration {
        asked.clamp(self.poll_min, self.poll_max)
    }

    /// The agent's own wait after `failures` refused or failed polls in a row: from
    /// `poll_min`, doubling, up to `poll_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doubled = self.poll_min.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        doubled.min(self.poll_max)
    }
}

/// How the agent gets its identity.
#[derive(Clone, Debug)]
pub enum Identity {
    /// Enrols itself on first start with this token.
    Enrol(String),
    /// Was enrolled by an admin, who handed it this token (and id, when known).
    Token { id: Option<String>, token: String },
}

/// How an offered and verified patch is installed.
#[derive(Clone, Debug)]
pub enum Installer {
    /// Runs this program with these arguments; exit status 0 means installed. It gets
    /// `PATCHWARDEN_FILE`, `PATCHWARDEN_VERSION`, `PATCHWARDEN_PATCH_ID` and
    /// `PATCHWARDEN_SHA256` in its environment.
    Command(Vec<String>),
    /// Waits, then succeeds, fails, or claims success without changing what runs.
    Simulated(SimulatedInstall),
}

/// What a simulated install does.
#[derive(Clone, Debug)]
pub struct SimulatedInstall {
    pub duration: Duration,
    pub outcome: SimulatedOutcome,
    /// When not empty, a failing install fails only for these target versions
    /// (a bad build), and the others succeed.
    pub fails_only: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimulatedOutcome {
    /// Runs the new version afterwards, with the patch as its image.
    Succeeds,
    /// Reports a failed install.
    Fails,
    /// Reports the new version as installed but keeps running the old one.
    ClaimsOnly,
}

/// The agent's settings, checked.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub server: Url,
    pub product: String,
    pub platform: Option<String>,
    pub name: String,
    pub version: String,
    pub image_sha256: Option<String>,
    pub image_file: Option<PathBuf>,
    pub identity: Identity,
    /// The `.pub` texts of the pinned keys.
    pub pinned_keys: Vec<String>,
    pub state_file: PathBuf,
    pub download_dir: PathBuf,
    pub installer: Installer,
    pub pull_listen: Option<SocketAddr>,
    pub pull_url: Option<String>,
    pub pull_token: Option<String>,
    pub request_timeout: Duration,
    /// The version scheme of the product: patches must be signed as of this scheme,
    /// and versions are ordered in it.
    pub version_scheme: VersionScheme,
    pub limits: AgentLimits,
    /// Heads must carry a quorum of witnesses' cosignatures (`witness_policy`).
    pub witnesses: Option<WitnessRequirement>,
}

impl AgentConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<AgentConfig> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file: File =
            toml::from_str(&text).with_context(|| format!("{} is not a valid agent configuration", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let at = |p: &Path| if p.is_absolute() { p.to_owned() } else { base.join(p) };
        let server = Url::parse(&file.server).with_context(|| format!("server `{}` is not a URL", file.server))?;
        let identity = match (file.enrollment_token, file.device_token) {
            (_, Some(token)) => Identity::Token {
                id: file.device_id,
                token,
            },
            (Some(token), None) => Identity::Enrol(token),
            (None, None) => bail!("the configuration needs enrollment_token or device_token"),
        };
        let mut pinned_keys = Vec::new();
        for key in &file.public_keys {
            let key = at(key);
            pinned_keys.push(
                std::fs::read_to_string(&key).with_context(|| format!("reading the pinned key {}", key.display()))?,
            );
        }
        let installer = match file.install_command {
            Some(command) if command.is_empty() => bail!("install_command is empty"),
            Some(command) => Installer::Command(command),
            None => Installer::Simulated(SimulatedInstall {
                duration: Duration::from_secs(file.simulated_install_seconds.unwrap_or(0)),
                outcome: SimulatedOutcome::Succeeds,
                fails_only: Vec::new(),
            }),
        };
        let defaults = AgentLimits::default();
        let duration = |name: &str, text: Option<&String>, default: Duration| match text {
            None => Ok(default),
            Some(text) => parse_duration(text).map_err(|e| anyhow::anyhow!("{name}: {e}")),
        };
        let limits = AgentLimits {
            poll_min: duration("poll_min", file.poll_min.as_ref(), defaults.poll_min)?,
            poll_max: duration("poll_max", file.poll_max.as_ref(), defaults.poll_max)?,
            max_patch_bytes: file.max_patch_bytes.unwrap_or(defaults.max_patch_bytes),
            stale_after: duration("stale_after", file.stale_after.as_ref(), defaults.stale_after)?,
        };
        let version_scheme = match &file.version_scheme {
            Some(text) => text
                .parse()
                .map_err(|e: String| anyhow::anyhow!("version_scheme: {e}"))?,
            None => VersionScheme::Vendor,
        };
        let witnesses = match &file.witness_policy {
            None => None,
            Some(path) => {
                let path = at(path);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the witness policy {}", path.display()))?;
                let policy = Policy::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Some(WitnessRequirement {
                    policy,
                    max_age: duration(
                        "witness_max_age",
                        file.witness_max_age.as_ref(),
                        Duration::from_secs(3600),
                    )?,
                })
            }
        };
        let config = AgentConfig {
            witnesses,
            server,
            product: file.product,
            platform: file.platform,
            name: file.name,
            version: file.version,
            image_sha256: file.image_sha256,
            image_file: file.image_file.map(|p| at(&p)),
            identity,
            pinned_keys,
            state_file: at(&file.state_file),
            download_dir: at(&file.download_dir),
            installer,
            pull_listen: file.pull_listen,
            pull_url: file.pull_url,
            pull_token: file.pull_token,
            request_timeout: Duration::from_secs(file.request_timeout_seconds.unwrap_or(60)),
            version_scheme,
            limits,
        };
        config.check()?;
        if config.pull_token.is_some() && config.pull_listen.is_none() {
            bail!("pull_token needs pull_listen: the agent serves pulls only when it listens");
        }
        Ok(config)
    }

    /// The rules every configuration obeys, however it was made.
    pub fn check(&self) -> anyhow::Result<()> {
        if !matches!(self.server.scheme(), "http" | "https") {
            bail!("server must be an http or https URL, not `{}`", self.server);
        }
        if self.pinned_keys.is_empty() {
            bail!("public_keys must pin at least one signing key: the agent installs nothing it cannot verify");
        }
        for key in &self.pinned_keys {
            crate::signing::PublicKeyInfo::parse(key).map_err(anyhow::Error::msg)?;
        }
        let limits = &self.limits;
        if limits.poll_min.is_zero() || limits.poll_min > limits.poll_max {
            bail!(
                "poll_min ({:?}) must be above zero and no longer than poll_max ({:?})",
                limits.poll_min,
                limits.poll_max
            );
        }
        if limits.max_patch_bytes == 0 {
            bail!("max_patch_bytes must be above zero");
        }
        if limits.stale_after <= limits.poll_max {
            bail!(
                "stale_after ({:?}) must be longer than poll_max ({:?}), or a device on its longest wait counts as stale",
                limits.stale_after,
                limits.poll_max
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_asked_for_stay_within_the_bounds_and_the_backoff_doubles_to_poll_max() {
        let limits = AgentLimits {
            poll_min: Duration::from_secs(10),
            poll_max: Duration::from_secs(600),
            ..AgentLimits::default()
        };
        assert_eq!(
            limits.clamp(Duration::from_secs(1_000_000_000)),
            Duration::from_secs(600)
        );
        assert_eq!(limits.clamp(Duration::ZERO), Duration::from_secs(10));
        assert_eq!(limits.clamp(Duration::from_secs(42)), Duration::from_secs(42));
        let backoff: Vec<u64> = (1..=8).map(|n| limits.backoff(n).as_secs()).collect();
        assert_eq!(backoff, [10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(limits.backoff(u32::MAX), Duration::from_secs(600));
    }

    #[test]
    fn the_file_names_the_bounds_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::signing::Signer::generate(&dir.path().join("keys"), None).unwrap();
        std::fs::write(dir.path().join("pinned.pub"), &key.public_key().text).unwrap();
        let base = r#"
            server = "http://127.0.0.1:8080"
            product = "acmeos"
            name = "a"
            version = "2.0.0"
            device_token = "pwd_x"
            public_keys = ["pinned.pub"]
            state_file = "state.json"
            download_dir = "downloads"
        "#;
        let load = |extra: &str| {
            let path = dir.path().join("agent.toml");
            std::fs::write(&path, format!("{base}{extra}")).unwrap();
            AgentConfig::load(&path)
        };
        let defaults = load("").unwrap();
        assert_eq!(defaults.version_scheme, VersionScheme::Vendor);
        assert_eq!(defaults.limits, AgentLimits::default());
        let set = load(
            "version_scheme = \"semver\"\npoll_min = \"5s\"\npoll_max = \"10m\"\nmax_patch_bytes = 1024\nstale_after = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(set.version_scheme, VersionScheme::Semver);
        assert_eq!(
            set.limits,
            AgentLimits {
                poll_min: Duration::from_secs(5),
                poll_max: Duration::from_secs(600),
                max_patch_bytes: 1024,
                stale_after: Duration::from_secs(3600),
            }
        );
        for (extra, names) in [
            ("version_scheme = \"calver\"\n", "version_scheme"),
            ("poll_min = \"1h\"\npoll_max = \"10m\"\n", "poll_min"),
            ("stale_after = \"10m\"\n", "stale_after"),
            ("max_patch_bytes = 0\n", "max_patch_bytes"),
            ("poll_max = \"soon\"\n", "poll_max"),
        ] {
            let err = load(extra).unwrap_err();
            assert!(format!("{err:#}").contains(names), "{extra}: {err:#}");
        }
    }
}
