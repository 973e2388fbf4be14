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
        help: "database connections per instance for requests (two more serve its background writes and, on SQLite, its writer)",
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
        name: "device_requests_per_minute",
        default: "120",
        help: "polls and install reports allowed per device a minute (as many at once after a quiet minute); past it 429 with Retry-After, answered from memory",
    },
    Setting {
        name: "poll_interval",
        default: "30m",
        help: "how often devices poll at the longest (each answer shortens it by up to 20 %, so devices spread out and every one asks again within it)",
    },
    Setting {
        name: "emergency_poll_interval",
        default: "5m",
        help: "the poll interval of a device that an emergency advisory affects",
    },
    Setting {
        name: "exposure_point_interval",
        default: "1h",
        help: "how often the adoption charts get a point (each advisory's exposure counts per customer)",
    },
    Setting {
        name: "log_head_interval",
        default: "5m",
        help: "how often the transparency log's tree head is signed again, even when nothing changed",
    },
    Setting {
        name: "log_cover_after",
        default: "500ms",
        help: "how soon after the newest tree head another is signed to cover new log entries: every event is covered by a signed head within about this plus 100 ms",
    },
    Setting {
        name: "log_head_ttl",
        default: "1h",
        help: "how long a signed tree head is valid: devices refuse answers whose head has expired (longer than log_head_interval)",
    },
    Setting {
        name: "log_origin",
        default: "<public_url host and path>/log",
        help: "the origin line of the log's checkpoints, which names this log",
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
        name: "secrets_key_file",
        default: "<keys_dir>/secrets.key",
        help: "key that seals pull tokens and webhook secrets at rest (created on first start when absent; share it between instances)",
    },
    Setting {
        name: "outbound_allow",
        default: "none",
        help: "networks pulls and webhooks may reach, comma-separated (`10.0.0.0/8,192.0.2.7`); none means any not denied",
    },
    Setting {
        name: "outbound_deny",
        default: "0.0.0.0/8,127.0.0.0/8,169.254.0.0/16,224.0.0.0/4,255.255.255.255,::/96,fe80::/10,ff00::/8,fd00:ec2::254,<bind address>",
        help: "networks pulls and webhooks never reach, checked after name resolution; wins over `outbound_allow`",
    },
    Setting {
        name: "webhook_deny",
        default: "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7",
        help: "networks webhook deliveries never reach besides `outbound_deny` (private networks by default; empty to let webhooks reach them)",
    },
    Setting {
        name: "pull_connect_timeout",
        default: "3s",
        help: "how long a pull waits to connect",
    },
    Setting {
        name: "pull_timeout",
        default: "10s",
        help: "how long a whole pull may take, body included",
    },
    Setting {
        name: "pull_max_response_bytes",
        default: "65536",
        help: "largest pull answer read; a longer one fails as too large",
    },
    Setting {
        name: "pull_concurrency",
        default: "512",
        help: "pulls in flight at once on this instance",
    },
    Setting {
        name: "pull_concurrency_per_customer",
        default: "64",
        help: "pulls of one customer's devices in flight at once on this instance: one customer's slow or numerous devices leave the rest to others, whose due pulls are claimed in turns",
    },
    Setting {
        name: "pull_per_host",
        default: "4",
        help: "pulls in flight at once to one host",
    },
    Setting {
        name: "pull_retries",
        default: "2",
        help: "extra attempts of a pull after a transient failure (refused, reset, 429, 5xx)",
    },
    Setting {
        name: "pull_retry_delay",
        default: "500ms",
        help: "first wait before a retry; doubled each time, with jitter",
    },
    Setting {
        name: "pull_backoff_max",
        default: "6h",
        help: "longest a failing device's next pull is put off (it doubles with each failed pull)",
    },
    Setting {
        name: "pull_lease",
        default: "60s",
        help: "how long an instance holds a claimed pull; past it another instance takes the work over",
    },
    Setting {
        name: "unreachable_after",
        default: "1h",
        help: "a device whose pulls have failed this long is unreachable (`device.unreachable` event, and an anomaly during an emergency)",
    },
    Setting {
        name: "webhook_retry_delay",
        default: "10s",
        help: "first wait before a webhook delivery is tried again; doubled each time, with jitter, for a day",
    },
    Setting {
        name: "webhooks_allow_http",
        default: "false",
        help: "accept `http://` webhook URLs (deliveries are signed but not encrypted); otherwise only `https://`",
    },
    Setting {
        name: "witness_policy",
        default: "(none)",
        help: "a C2SP tlog-policy file: the witnesses each new tree head is sent to for cosigning (`witness <name> <vkey> <url>`), and the quorum the dashboard checks",
    },
    Setting {
        name: "witness_timeout",
        default: "5s",
        help: "how long one witness may take to cosign a head before it is asked again later",
    },
    Setting {
        name: "webhook_timeout",
        default: "10s",
        help: "how long one webhook delivery may take",
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
        help: "run the background jobs (pull scheduler, webhook deliveries, sweeps) in this instance; `false` on instances that only serve",
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
    Setting {
        name: "security_contact",
        default: "mailto:security@<public_url's host>",
        help: "where to report vulnerabilities (a mailto:, https: or tel: URI): security.txt's Contact and the OpenPGP key's user ID",
    },
];
