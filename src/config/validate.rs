//! The second stage: raw settings checked, one by one, into the typed [`Config`]; a
//! bad value names the setting and where it came from.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use super::{Config, ConfigError, LogFormat, PullSettings, RawSettings, S3Config, Secret};
use crate::db::DatabaseUrl;
use crate::domain::network::{parse_list, AddressPolicy, Network, DEFAULT_DENY, PRIVATE_NETWORKS};
use crate::domain::parse_duration;

impl RawSettings {
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

    fn span(
        &self,
        name: &'static str,
        default: Duration,
        min: Duration,
        max: Duration,
    ) -> Result<Duration, ConfigError> {
        self.parse(name, default, |s| {
            let value = parse_duration(s)?;
            if value < min || value > max {
                return Err(format!("must be from {}ms to {}s", min.as_millis(), max.as_secs()));
            }
            Ok(value)
        })
    }

    fn flag(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        self.parse(name, default, |s| match s {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{s}` is not `true` or `false`")),
        })
    }

    fn count(&self, name: &'static str, default: usize, max: usize) -> Result<usize, ConfigError> {
        self.parse(name, default, |s| match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(format!("`{s}` is not a whole number from 1 to {max}")),
        })
    }

    /// The pull settings.
    fn pulls(&self) -> Result<PullSettings, ConfigError> {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let connect_timeout = self.span("pull_connect_timeout", secs(3), ms(10), secs(60))?;
        let timeout = self.span("pull_timeout", secs(10), ms(10), secs(300))?;
        let lease = self.span("pull_lease", secs(60), ms(500), secs(3600))?;
        if lease <= timeout + connect_timeout {
            return Err(ConfigError {
                setting: "pull_lease".into(),
                origin: self.get("pull_lease").map_or("default".into(), |raw| raw.origin.clone()),
                problem: format!(
                    "must be longer than pull_timeout and pull_connect_timeout together ({} ms), so that a pull ends within its lease",
                    (timeout + connect_timeout).as_millis()
                ),
            });
        }
        Ok(PullSettings {
            connect_timeout,
            timeout,
            lease,
            max_response_bytes: self.count("pull_max_response_bytes", 65_536, 16 * 1024 * 1024)?,
            concurrency: self.count("pull_concurrency", 512, 65_536)?,
            per_customer: self.count("pull_concurrency_per_customer", 64, 65_536)?,
            per_host: self.count("pull_per_host", 4, 1024)?,
            retries: self.parse("pull_retries", 2, |s| match s.parse::<u32>() {
                Ok(n @ 0..=10) => Ok(n),
                _ => Err(format!("`{s}` is not a whole number from 0 to 10")),
            })?,
            retry_delay: self.span("pull_retry_delay", ms(500), ms(1), secs(60))?,
            backoff_max: self.span("pull_backoff_max", secs(6 * 3600), secs(1), secs(7 * 86_400))?,
        })
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
        // A count a minute, from 1 to `max`.
        let per_minute = |name: &'static str, default: u32, max: u32| {
            self.parse(name, NonZeroU32::MIN.saturating_add(default - 1), |s| {
                s.parse::<NonZeroU32>()
                    .ok()
                    .filter(|n| n.get() <= max)
                    .ok_or_else(|| format!("`{s}` is not a whole number from 1 to {max}"))
            })
        };
        let login_attempts_per_minute = per_minute("login_attempts_per_minute", 5, 1000)?;
        let enrollment_attempts_per_minute = per_minute("enrollment_attempts_per_minute", 30, 100_000)?;
        let device_requests_per_minute = per_minute("device_requests_per_minute", 120, 1_000_000)?;
        let interval = |name: &'static str, default: u64| {
            self.parse(name, Duration::from_secs(default), |s| {
                let every = parse_duration(s)?;
                if every < Duration::from_secs(10) || every > Duration::from_secs(7 * 86_400) {
                    return Err("must be from 10s to 7d".into());
                }
                Ok(every)
            })
        };
        let poll_interval = interval("poll_interval", 30 * 60)?;
        let emergency_poll_interval = interval("emergency_poll_interval", 5 * 60)?;
        let install_stall_after = interval("install_stall_after", 2 * 3600)?;
        let exposure_point_interval = interval("exposure_point_interval", 3600)?;
        let log_head_interval = interval("log_head_interval", 5 * 60)?;
        let log_head_ttl = interval("log_head_ttl", 3600)?;
        let log_cover_after = self.parse("log_cover_after", Duration::from_millis(500), |s| {
            let after = parse_duration(s)?;
            if after < Duration::from_millis(100) || after > Duration::from_secs(300) {
                return Err("must be from 100ms to 5m".into());
            }
            Ok(after)
        })?;
        if log_head_ttl <= log_head_interval {
            return Err(ConfigError {
                setting: "log_head_ttl".into(),
                origin: self
                    .get("log_head_ttl")
                    .map_or_else(|| "default".into(), |raw| raw.origin.clone()),
                problem: "must be longer than log_head_interval, or heads expire before the next is signed".into(),
            });
        }
        let default_origin = format!(
            "{}{}{}/log",
            public_url.host_str().unwrap_or("localhost"),
            public_url.port().map(|p| format!(":{p}")).unwrap_or_default(),
            public_url.path().trim_end_matches('/')
        );
        let log_origin = self.parse("log_origin", default_origin, |s| {
            if !crate::domain::note::valid_key_name(s) {
                Err(format!(
                    "`{s}` must be one word without spaces or `+` (it names the log's note key), like `updates.example.com/log`"
                ))
            } else {
                Ok(s.to_owned())
            }
        })?;
        let observation_queue_max = self.parse("observation_queue_max", 1_000_000, |s| match s.parse::<usize>() {
            Ok(n @ 1..=100_000_000) => Ok(n),
            _ => Err(format!("`{s}` is not a whole number from 1 to 100000000")),
        })?;
        let trust_proxy_headers = self.flag("trust_proxy_headers", false)?;
        let trusted_proxy_hops = self.parse("trusted_proxy_hops", 1, |s| match s.parse::<usize>() {
            Ok(n @ 1..=16) => Ok(n),
            _ => Err(format!("`{s}` is not a whole number from 1 to 16")),
        })?;
        let jobs = self.flag("jobs", true)?;
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
        let security_contact = self.parse("security_contact", None, |s| {
            let ok = ["mailto:", "https://", "tel:"]
                .iter()
                .any(|p| s.starts_with(p) && s.len() > p.len())
                && s.len() <= 300
                && !s.chars().any(|c| c.is_control() || c.is_whitespace());
            if ok {
                Ok(Some(s.to_owned()))
            } else {
                Err(format!("`{s}` must be a mailto:, https:// or tel: URI without spaces"))
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
        let secrets_key_file = self.parse(
            "secrets_key_file",
            keys_dir.join(crate::secrets::SEALING_KEY_FILE),
            |s| {
                if s.is_empty() {
                    Err("must not be empty".into())
                } else {
                    Ok(PathBuf::from(s))
                }
            },
        )?;
        // By default the server's own listening address is denied too (when it
        // listens on one address; loopback is denied anyway).
        let mut default_deny = parse_list(DEFAULT_DENY).unwrap_or_default();
        if !bind.ip().is_unspecified() {
            default_deny.push(Network::from(bind.ip()));
        }
        let outbound = AddressPolicy {
            allow: self.parse("outbound_allow", Vec::new(), parse_list)?,
            deny: self.parse("outbound_deny", default_deny, parse_list)?,
        };
        let webhook_outbound = AddressPolicy {
            allow: outbound.allow.clone(),
            deny: outbound
                .deny
                .iter()
                .copied()
                .chain(self.parse(
                    "webhook_deny",
                    parse_list(PRIVATE_NETWORKS).unwrap_or_default(),
                    parse_list,
                )?)
                .collect(),
        };
        let pulls = self.pulls()?;
        let unreachable_after = self.span(
            "unreachable_after",
            Duration::from_secs(3600),
            Duration::from_secs(1),
            Duration::from_secs(30 * 86_400),
        )?;
        let webhook_retry_delay = self.span(
            "webhook_retry_delay",
            Duration::from_secs(10),
            Duration::from_millis(1),
            Duration::from_secs(3600),
        )?;
        let webhook_timeout = self.span(
            "webhook_timeout",
            Duration::from_secs(10),
            Duration::from_millis(10),
            Duration::from_secs(120),
        )?;
        let webhooks_allow_http = self.flag("webhooks_allow_http", false)?;
        let witness_policy = self.parse("witness_policy", None, |s| {
            let text = std::fs::read_to_string(s).map_err(|e| format!("cannot read `{s}`: {e}"))?;
            crate::domain::policy::Policy::parse(&text)
                .map(Some)
                .map_err(|e| format!("`{s}`: {e}"))
        })?;
        let witness_timeout = self.span(
            "witness_timeout",
            Duration::from_secs(5),
            Duration::from_millis(10),
            Duration::from_secs(60),
        )?;
        Ok(Config {
            webhooks_allow_http,
            witness_policy,
            witness_timeout,
            secrets_key_file,
            outbound,
            webhook_outbound,
            pulls,
            unreachable_after,
            webhook_retry_delay,
            webhook_timeout,
            download_offload_prefix,
            max_patch_bytes,
            s3,
            keys_dir,
            key_password,
            advisory_id_prefix,
            vendor_name,
            security_contact,
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
            enrollment_attempts_per_minute,
            device_requests_per_minute,
            poll_interval,
            emergency_poll_interval,
            exposure_point_interval,
            log_head_interval,
            log_cover_after,
            log_head_ttl,
            log_origin,
            install_stall_after,
            observation_queue_max,
            client_address_hops: if trust_proxy_headers { trusted_proxy_hops } else { 0 },
            jobs,
            workers,
        })
    }
}
