//! The table of every setting, its default and its meaning; the README lists the same.

/// One setting: its name, its default as written in the file, and what it does.
pub struct Setting {
    pub name: &'static str,
    pub default: &'static str,
    pub help: &'static str,
}

/// Every setting there is; the README's table lists the same.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "bind",
        default: "127.0.0.1:8080",
        help: "address and port to listen on",
    },
    Setting {
        name: "data_dir",
        default: "data",
        help: "directory for the SQLite database and stored files",
    },
    Setting {
        name: "database_url",
        default: "<data_dir>/patchwarden.db",
        help: "SQLite file path (or `sqlite://path`), or a `postgres://` URL",
    },
    Setting {
        name: "database_pool_size",
        default: "8",
        help: "database connections per instance",
    },
    Setting {
        name: "public_url",
        default: "http://<bind>",
        help: "the URL clients use; `https://` marks cookies Secure",
    },
    Setting {
        name: "log_format",
        default: "human",
        help: "`human` or `json`",
    },
    Setting {
        name: "log_level",
        default: "info",
        help: "a tracing filter, e.g. `info` or `patchwarden=debug,info`",
    },
    Setting {
        name: "max_json_body_bytes",
        default: "262144",
        help: "largest JSON or form body accepted",
    },
    Setting {
        name: "session_ttl",
        default: "12h",
        help: "how long a web login lasts",
    },
    Setting {
        name: "login_attempts_per_minute",
        default: "5",
        help: "login attempts allowed per account and per client address",
    },
    Setting {
        name: "enrollment_attempts_per_minute",
        default: "30",
        help: "device enrolments allowed per enrollment token and per client address",
    },
    Setting {
        name: "poll_interval",
        default: "30m",
        help: "how often devices are told to poll (each answer moves it by up to 10 % either way)",
    },
    Setting {
        name: "emergency_poll_interval",
        default: "5m",
        help: "the poll interval of a device that an emergency advisory affects",
    },
    Setting {
        name: "install_stall_after",
        default: "2h",
        help: "a device whose latest install step (downloading, downloaded, installing) is older than this is shown as stalled",
    },
    Setting {
        name: "observation_queue_max",
        default: "1000000",
        help: "observations held in memory while the database is away; past it the oldest are dropped (counted in /metrics)",
    },
    Setting {
        name: "trust_proxy_headers",
        default: "false",
        help: "take the client address from `X-Forwarded-For` (only behind a proxy that sets it)",
    },
    Setting {
        name: "trusted_proxy_hops",
        default: "1",
        help: "with `trust_proxy_headers`: how many proxies append to `X-Forwarded-For`; the client is that many hops from the right",
    },
    Setting {
        name: "jobs",
        default: "true",
        help: "run the background jobs (sweeps) in this instance; `false` on instances that only serve",
    },
    Setting {
        name: "workers",
        default: "number of CPUs",
        help: "HTTP worker threads",
    },
    Setting {
        name: "keys_dir",
        default: "keys",
        help: "directory of the signing key pair (`patchwarden.key`, `patchwarden.pub`)",
    },
    Setting {
        name: "key_password_file",
        default: "none",
        help: "file holding the signing key's password (`PATCHWARDEN_KEY_PASSWORD` wins)",
    },
    Setting {
        name: "advisory_id_prefix",
        default: "PW",
        help: "prefix of advisory ids: `<prefix>-<year>-<number>`",
    },
    Setting {
        name: "max_patch_bytes",
        default: "4294967296",
        help: "largest patch file accepted",
    },
    Setting {
        name: "download_offload_prefix",
        default: "none",
        help: "hand downloads to a front nginx: answer with `X-Accel-Redirect: <prefix>sha256/…` (local storage only)",
    },
    Setting {
        name: "s3_bucket",
        default: "none",
        help: "store patch files in this S3 bucket instead of `<data_dir>/patches`",
    },
    Setting {
        name: "s3_endpoint",
        default: "AWS",
        help: "URL of an S3-compatible server",
    },
    Setting {
        name: "s3_region",
        default: "us-east-1",
        help: "S3 region",
    },
    Setting {
        name: "s3_access_key_id",
        default: "none",
        help: "S3 access key id (required with `s3_bucket`)",
    },
    Setting {
        name: "s3_secret_access_key",
        default: "none",
        help: "S3 secret key (required with `s3_bucket`; never logged)",
    },
    Setting {
        name: "s3_prefix",
        default: "none",
        help: "key prefix inside the bucket",
    },
    Setting {
        name: "vendor_name",
        default: "patchwarden",
        help: "the publisher's name in feeds and CSAF documents",
    },
];
