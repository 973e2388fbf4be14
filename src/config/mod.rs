//! Configuration in two stages: raw settings gathered from an optional TOML file and
//! `PATCHWARDEN_<NAME>` environment variables (the environment wins), then one
//! validation pass that yields the typed [`Config`] the server runs with. A bad value
//! fails here, at start, with a message naming the setting and where it came from.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::db::DatabaseUrl;

pub use settings::{Setting, SETTINGS};

mod settings;
mod validate;

/// A setting that could not be used, with where its value came from.
#[derive(Debug)]
pub struct ConfigError {
    pub setting: String,
    pub origin: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid setting `{}` ({}): {}",
            self.setting, self.origin, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

/// A raw value and where it came from.
#[derive(Clone, Debug)]
struct RawValue {
    text: String,
    origin: String,
}

/// Settings as read, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawSettings {
    values: BTreeMap<&'static str, RawValue>,
    key_password: Option<KeyPassword>,
}

/// A secret setting (a password, an access key); never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The signing key's password.
pub type KeyPassword = Secret;

/// Where patch files go when they are not kept on the local disk.
#[derive(Clone, Debug)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// An S3-compatible endpoint; AWS when absent.
    pub endpoint: Option<url::Url>,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// A key prefix inside the bucket.
    pub prefix: String,
}

/// How pulls are made.
#[derive(Clone, Debug)]
pub struct PullSettings {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    pub max_response_bytes: usize,
    pub concurrency: usize,
    /// Pulls of one customer's devices in flight at once on this instance.
    pub per_customer: usize,
    pub per_host: usize,
    pub retries: u32,
    pub retry_delay: Duration,
    pub backoff_max: Duration,
    pub lease: Duration,
}

/// The environment variable that holds the signing key's password.
pub const KEY_PASSWORD_ENV: &str = "PATCHWARDEN_KEY_PASSWORD";

fn known(name: &str) -> Option<&'static str> {
    SETTINGS.iter().map(|s| s.name).find(|known| *known == name)
}

impl RawSettings {
    /// Reads the file (when given) and then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut raw = RawSettings::default();
        if let Some(path) = file {
            raw.merge_file(path)?;
        }
        raw.merge_env(std::env::vars());
        Ok(raw)
    }

    fn merge_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let origin = format!("config file {}", path.display());
        let file_error = |problem: String| ConfigError {
            setting: "--config".into(),
            origin: origin.clone(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|err| file_error(format!("cannot read it: {err}")))?;
        let table: toml::Table = text
            .parse()
            .map_err(|err| file_error(format!("not valid TOML: {err}")))?;
        for (key, value) in table {
            let name = known(&key).ok_or_else(|| ConfigError {
                setting: key.clone(),
                origin: origin.clone(),
                problem: "unknown setting".into(),
            })?;
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError {
                        setting: key,
                        origin,
                        problem: format!("must be a string, a number or a boolean, not a {}", other.type_str()),
                    })
                }
            };
            self.values.insert(
                name,
                RawValue {
                    text,
                    origin: origin.clone(),
                },
            );
        }
        Ok(())
    }

    /// Takes `PATCHWARDEN_<NAME>` for every known setting from `vars`.
    pub fn merge_env(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (key, text) in vars {
            if key == KEY_PASSWORD_ENV {
                self.key_password = Some(Secret(text));
                continue;
            }
            let Some(name) = key.strip_prefix("PATCHWARDEN_").map(str::to_ascii_lowercase) else {
                continue;
            };
            if let Some(name) = known(&name) {
                self.values.insert(
                    name,
                    RawValue {
                        text,
                        origin: format!("environment variable {key}"),
                    },
                );
            }
        }
    }

    /// Sets a value directly, as the tests and the CLI do.
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> Result<(), ConfigError> {
        let name = known(name).ok_or_else(|| ConfigError {
            setting: name.into(),
            origin: "code".into(),
            problem: "unknown setting".into(),
        })?;
        self.values.insert(
            name,
            RawValue {
                text: value.into(),
                origin: "code".into(),
            },
        );
        Ok(())
    }

    fn get(&self, name: &'static str) -> Option<&RawValue> {
        self.values.get(name)
    }

    /// Parses `name` with `parse`, or returns `default` when it is not set.
    fn parse<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse(raw.text.trim()).map_err(|problem| ConfigError {
                setting: name.into(),
                origin: raw.origin.clone(),
                problem,
            }),
        }
    }

    fn text(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        self.parse(
            name,
            None,
            |s| if s.is_empty() { Ok(None) } else { Ok(Some(s.to_owned())) },
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// The validated configuration, shared read-only through the application state.
#[derive(Clone, Debug)]
pub struct Config {
    /// When set, downloads are answered with `X-Accel-Redirect` for a front nginx.
    pub download_offload_prefix: Option<String>,
    pub max_patch_bytes: u64,
    pub s3: Option<S3Config>,
    pub keys_dir: PathBuf,
    pub key_password: Option<KeyPassword>,
    pub advisory_id_prefix: String,
    pub vendor_name: String,
    /// Where vulnerabilities are reported (an RFC 9116 Contact URI); `None` for
    /// `mailto:security@` the public URL's host.
    pub security_contact: Option<String>,
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    pub database: DatabaseUrl,
    pub database_pool_size: u32,
    pub public_url: url::Url,
    pub log_format: LogFormat,
    pub log_level: String,
    pub max_json_body_bytes: usize,
    pub session_ttl: Duration,
    pub login_attempts_per_minute: NonZeroU32,
    pub enrollment_attempts_per_minute: NonZeroU32,
    /// Polls and install reports per device a minute.
    pub device_requests_per_minute: NonZeroU32,
    /// The poll interval devices are told (before jitter).
    pub poll_interval: Duration,
    /// The poll interval of a device an emergency advisory affects.
    pub emergency_poll_interval: Duration,
    /// How often the adoption charts get a point.
    pub exposure_point_interval: Duration,
    /// How often the log's tree head is signed again.
    pub log_head_interval: Duration,
    /// How soon after the newest head another is signed to cover new entries.
    pub log_cover_after: Duration,
    /// How long a signed tree head is valid.
    pub log_head_ttl: Duration,
    /// The origin line of the log's checkpoints.
    pub log_origin: String,
    /// When an install step in progress counts as stalled.
    pub install_stall_after: Duration,
    /// Observations held in memory at most.
    pub observation_queue_max: usize,
    /// The key file that seals pull tokens and webhook secrets.
    pub secrets_key_file: PathBuf,
    /// Where pulls and webhook deliveries may connect.
    pub outbound: crate::domain::network::AddressPolicy,
    /// Where webhook deliveries may go: `outbound` less `webhook_deny`.
    pub webhook_outbound: crate::domain::network::AddressPolicy,
    pub pulls: PullSettings,
    /// Failing this long makes a device unreachable.
    pub unreachable_after: Duration,
    pub webhook_retry_delay: Duration,
    pub webhook_timeout: Duration,
    /// The witnesses new heads are sent to, and the quorum (`witness_policy`).
    pub witness_policy: Option<crate::domain::policy::Policy>,
    pub witness_timeout: Duration,
    /// Whether webhook URLs may be plain `http://`.
    pub webhooks_allow_http: bool,
    /// How many `X-Forwarded-For` hops from the right the client's address is; 0
    /// when proxy headers are not trusted and the peer's address counts.
    pub client_address_hops: usize,
    /// Whether this instance runs the background jobs.
    pub jobs: bool,
    pub workers: usize,
}

impl Config {
    /// Whether cookies must carry `Secure`: the server is reached over TLS.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// An absolute URL for `path` (which starts with `/`) under the public URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }

    /// Where vulnerabilities are reported: the setting, or the public URL's host's
    /// `security@` address.
    pub fn security_contact(&self) -> String {
        self.security_contact
            .clone()
            .unwrap_or_else(|| format!("mailto:security@{}", self.public_url.host_str().unwrap_or("localhost")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(pairs: &[(&str, &str)]) -> RawSettings {
        let mut raw = RawSettings::default();
        raw.merge_env(
            pairs
                .iter()
                .map(|(k, v)| (format!("PATCHWARDEN_{}", k.to_uppercase()), v.to_string())),
        );
        raw
    }

    #[test]
    fn by_default_outbound_requests_reach_neither_the_server_nor_loopback() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let config = raw(&[("bind", "10.0.0.5:8443")]).validate().unwrap();
        assert!(
            config.outbound.check(ip("10.0.0.5")).is_err(),
            "the server's own address"
        );
        assert!(config.outbound.check(ip("127.0.0.1")).is_err());
        assert!(config.outbound.check(ip("10.0.0.6")).is_ok(), "a device beside it");
        assert!(
            config.webhook_outbound.check(ip("10.0.0.6")).is_err(),
            "webhooks reach no private network"
        );
        assert!(config.webhook_outbound.check(ip("203.0.113.7")).is_ok());
        let open = raw(&[("webhook_deny", "")]).validate().unwrap();
        assert!(open.webhook_outbound.check(ip("10.0.0.6")).is_ok(), "unless allowed");
        assert!(
            open.webhook_outbound.check(ip("127.0.0.1")).is_err(),
            "loopback stays denied"
        );
    }

    #[test]
    fn defaults_are_the_embedded_ones() {
        let config = RawSettings::default().validate().unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(
            config.database,
            DatabaseUrl::Sqlite(PathBuf::from("data/patchwarden.db"))
        );
        assert!(!config.secure_cookies());
        assert_eq!(config.login_attempts_per_minute.get(), 5);
    }

    #[test]
    fn env_overrides_and_names_the_setting_on_error() {
        let config = raw(&[("bind", "0.0.0.0:9000"), ("database_url", "postgres://u@db/pw")])
            .validate()
            .unwrap();
        assert_eq!(config.bind.port(), 9000);
        assert!(matches!(config.database, DatabaseUrl::Postgres(_)));

        let err = raw(&[("database_url", "mysql://x/y")]).validate().unwrap_err();
        assert_eq!(err.setting, "database_url");
        assert!(err.to_string().contains("PATCHWARDEN_DATABASE_URL"), "{err}");

        for (name, value) in [
            ("bind", "localhost"),
            ("public_url", "ftp://x"),
            ("log_format", "xml"),
            ("session_ttl", "forever"),
            ("database_pool_size", "0"),
            ("login_attempts_per_minute", "-1"),
            ("trust_proxy_headers", "yes"),
            ("max_json_body_bytes", "12"),
            ("advisory_id_prefix", "pw-"),
            ("key_password_file", "/nonexistent/password"),
            ("max_patch_bytes", "0"),
            ("security_contact", "security@example.com"),
            ("download_offload_prefix", "files"),
            ("s3_endpoint", "http://127.0.0.1:9000"),
        ] {
            let err = raw(&[(name, value)]).validate().unwrap_err();
            assert_eq!(err.setting, name, "{err}");
        }
    }

    #[test]
    fn https_public_url_makes_cookies_secure() {
        let config = raw(&[("public_url", "https://updates.example.com")])
            .validate()
            .unwrap();
        assert!(config.secure_cookies());
    }

    #[test]
    fn file_rejects_unknown_keys_and_wrong_types() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw.toml");
        std::fs::write(&path, "bind = \"127.0.0.1:9999\"\ndatabase_pool_size = 4\n").unwrap();
        let config = RawSettings::load(Some(&path)).unwrap().validate().unwrap();
        assert_eq!(config.bind.port(), 9999);
        assert_eq!(config.database_pool_size, 4);

        std::fs::write(&path, "bnid = \"127.0.0.1:9999\"\n").unwrap();
        let err = RawSettings::load(Some(&path)).unwrap_err();
        assert_eq!(err.setting, "bnid");
        assert_eq!(err.problem, "unknown setting");

        std::fs::write(&path, "bind = [1, 2]\n").unwrap();
        assert_eq!(RawSettings::load(Some(&path)).unwrap_err().setting, "bind");

        let missing = RawSettings::load(Some(&dir.path().join("absent.toml"))).unwrap_err();
        assert_eq!(missing.setting, "--config");
    }
}

#[cfg(test)]
mod readme_tests {
    use super::SETTINGS;

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../README.md");
        for setting in SETTINGS {
            let row = format!(
                "| `{}` | {} | {} |",
                setting.name,
                readme_default(setting.default),
                setting.help
            );
            assert!(readme.contains(&row), "README.md lacks the row:\n{row}");
        }
    }

    fn readme_default(default: &str) -> String {
        if default.contains(' ') && !default.starts_with('<') {
            default.to_owned()
        } else {
            format!("`{default}`")
        }
    }
}
