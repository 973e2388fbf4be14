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
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use url::Url;

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
            }),
        };
        let config = AgentConfig {
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
        Ok(())
    }
}
