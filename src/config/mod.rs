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
use crate::domain::parse_duration;

pub use settings::{Setting, SETTINGS};

mod settings;

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

    /// The S3 settings: all or nothing, starting with `s3_bucket`.
    fn s3(&self) -> Result<Option<S3Config>, ConfigError> {
        let Some(bucket) = self.text("s3_bucket")? else {
            for name in ["s3_endpoint", "s3_access_key_id", "s3_secret_access_key", "s3_prefix"] {
                if let Some(raw) = self.get(name) {
                    return Err(ConfigError {
                        setting: name.into(),
                        origin: raw.origin.clone(),
                        problem: "is set but `s3_bucket` is not".into(),
                    });
                }
            }
            return Ok(None);
        };
        let required = |name: &'static str, value: Option<String>| {
            value.ok_or_else(|| ConfigError {
                setting: name.into(),
                origin: "s3_bucket is set".into(),
                problem: "is required for S3 storage".into(),
            })
        };
        let endpoint = self.parse("s3_endpoint", None, |s| {
            let url = url::Url::parse(s).map_err(|e| format!("`{s}` is not a URL: {e}"))?;
            match url.scheme() {
                "http" | "https" if url.host().is_some() => Ok(Some(url)),
                _ => Err(format!("`{s}` must be an http:// or https:// URL")),
            }
        })?;
        Ok(Some(S3Config {
            bucket,
            region: self.text("s3_region")?.unwrap_or_else(|| "us-east-1".into()),
            endpoint,
            access_key_id: required("s3_access_key_id", self.text("s3_access_key_id")?)?,
            secret_access_key: Secret(required("s3_secret_access_key", self.text("s3_secret_access_key")?)?),
            prefix: self.text("s3_prefix")?.unwrap_or_default(),
        }))
    }

    /// Validates everything and builds the [`Config`].
    pub fn validate(&self) -> Result<Config, ConfigError> {
        let bind = self.parse("bind", SocketAddr::from(([127, 0, 0, 1], 8080)), |s| {
            s.parse()
                .map_err(|_| format!("`{s}` is not an address with a port, like 127.0.0.1:8080"))
        })?;
        let data_dir = self.parse("data_dir", PathBuf::from("data"), |s| {
            if s.is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(PathBuf::from(s))
            }
        })?;
        let database = self.parse(
            "database_url",
            DatabaseUrl::Sqlite(data_dir.join("patchwarden.db")),
            DatabaseUrl::parse,
        )?;
        let database_pool_size = self.parse("database_pool_size", 8, |s| match s.parse::<u32>() {
            Ok(n @ 1..=256) => Ok(n),
            _ => Err(format!("`{s}` is not a whole number from 1 to 256")),
        })?;
        let default_public = url::Url::parse(&format!("http://{bind}")).map_err(|err| ConfigError {
            setting: "public_url".into(),
            origin: "default".into(),
            problem: err.to_string(),
        })?;
        let public_url = self.parse("public_url", default_public, |s| {
            let url = url::Url::parse(s).map_err(|err| format!("`{s}` is not a URL: {err}"))?;
            match url.scheme() {
                "http" | "https" if url.host().is_some() => Ok(url),
                _ => Err(format!("`{s}` must be an http:// or https:// URL with a host")),
            }
        })?;
        let log_format = self.parse("log_format", LogFormat::Human, |s| match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("`{s}` is not `human` or `json`")),
        })?;
        let log_level = self.parse("log_level", "info".to_owned(), |s| {
            tracing_subscriber::EnvFilter::try_new(s)
                .map(|_| s.to_owned())
                .map_err(|err| format!("`{s}` is not a log filter: {err}"))
        })?;
        let max_json_body_bytes = self.parse("max_json_body_bytes", 256 * 1024, |s| match s.parse::<usize>() {
            Ok(n @ 1024..=67_108_864) => Ok(n),
            _ => Err(format!("`{s}` is not a whole number from 1024 to 67108864")),
        })?;
        let session_ttl = self.parse("session_ttl", Duration::from_secs(12 * 3600), |s| {
            let ttl = parse_duration(s)?;
            if ttl < Duration::from_secs(60) {
                return Err("must be at least 1m".into());
            }
            Ok(ttl)
        })?;
        let login_attempts_per_minute =
            self.parse("login_attempts_per_minute", NonZeroU32::MIN.saturating_add(4), |s| {
                s.parse::<NonZeroU32>()
                    .ok()
                    .filter(|n| n.get() <= 1000)
                    .ok_or_else(|| format!("`{s}` is not a whole number from 1 to 1000"))
            })?;
        let trust_proxy_headers = self.parse("trust_proxy_headers", false, |s| match s {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{s}` is not `true` or `false`")),
        })?;
        let trusted_proxy_hops = self.parse("trusted_proxy_hops", 1, |s| match s.parse::<usize>() {
            Ok(n @ 1..=16) => Ok(n),
            _ => Err(format!("`{s}` is not a whole number from 1 to 16")),
        })?;
        let jobs = self.parse("jobs", true, |s| match s {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{s}` is not `true` or `false`")),
        })?;
        let workers = self.parse(
            "workers",
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            |s| match s.parse::<usize>() {
                Ok(n @ 1..=512) => Ok(n),
                _ => Err(format!("`{s}` is not a whole number from 1 to 512")),
            },
        )?;
        let keys_dir = self.parse("keys_dir", PathBuf::from("keys"), |s| {
            let dir = PathBuf::from(s);
            let key = dir.join(crate::signing::SECRET_KEY_FILE);
            if s.is_empty() {
                return Err("must not be empty".into());
            }
            if key.exists() {
                std::fs::File::open(&key)
                    .map_err(|e| format!("the signing key {} is not readable: {e}", key.display()))?;
            }
            Ok(dir)
        })?;
        let password_from_file = self.parse("key_password_file", None, |s| {
            let text = std::fs::read_to_string(s).map_err(|e| format!("cannot read `{s}`: {e}"))?;
            let password = text.trim_end_matches(['\r', '\n']).to_owned();
            if password.is_empty() {
                return Err(format!("`{s}` is empty"));
            }
            Ok(Some(Secret(password)))
        })?;
        let key_password = self.key_password.clone().or(password_from_file);
        let advisory_id_prefix = self.parse("advisory_id_prefix", "PW".to_owned(), |s| {
            let ok = (1..=16).contains(&s.len())
                && s.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
                && s.as_bytes()[0].is_ascii_uppercase();
            if ok {
                Ok(s.to_owned())
            } else {
                Err(format!(
                    "`{s}` must be 1 to 16 upper-case letters and digits, starting with a letter"
                ))
            }
        })?;
        let vendor_name = self.parse("vendor_name", "patchwarden".to_owned(), |s| {
            if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) {
                Err("must be 1 to 200 printable characters".into())
            } else {
                Ok(s.to_owned())
            }
        })?;
        let max_patch_bytes = self.parse("max_patch_bytes", 4 * 1024 * 1024 * 1024, |s| match s.parse::<u64>() {
            Ok(n @ 1..) => Ok(n),
            _ => Err(format!("`{s}` is not a positive whole number of bytes")),
        })?;
        let s3 = self.s3()?;
        let download_offload_prefix = self.parse("download_offload_prefix", None, |p| {
            if p.is_empty() {
                return Ok(None);
            }
            let plain = p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'));
            if !p.starts_with('/') || !p.ends_with('/') || !plain || p.contains("..") {
                return Err(format!(
                    "`{p}` must be a path like /_patch_files/ (starting and ending with /)"
                ));
            }
            if s3.is_some() {
                return Err("works with local storage only; unset s3_bucket or this setting".into());
            }
            Ok(Some(p.to_owned()))
        })?;
        Ok(Config {
            download_offload_prefix,
            max_patch_bytes,
            s3,
            keys_dir,
            key_password,
            advisory_id_prefix,
            vendor_name,
            bind,
            data_dir,
            database,
            database_pool_size,
            public_url,
            log_format,
            log_level,
            max_json_body_bytes,
            session_ttl,
            login_attempts_per_minute,
            client_address_hops: if trust_proxy_headers { trusted_proxy_hops } else { 0 },
            jobs,
            workers,
        })
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
