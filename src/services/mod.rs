//! Business operations, one module per capability. A service takes typed inputs and
//! a caller described in domain terms ([`crate::domain::Scope`]), and returns a
//! [`ServiceError`]; nothing here knows of HTTP, so handlers, the command line, the
//! job runner and tests all call the same functions.
//!
//! [`Services`] is what they share: configuration, database, signing key, patch
//! storage and the in-memory guards (login limiter, password-check gate, upload
//! writers). It is built once at start.
//!
//! Capabilities form a tree: a capability uses only those below it. What follows
//! an event (the fleet copy refreshed, a tree head signed, customers told) is not
//! called by the capability that caused it: it reports its events to
//! [`Services::reactions`], which the `effects` capability, above the others,
//! provides.
pub mod accounts;
pub mod advisories;
pub mod anomalies;
pub mod budget;
pub mod csaf;
pub mod effects;
pub mod error;
pub mod evidence;
pub mod fleet;
pub mod images;
pub mod keys;
pub mod log;
pub mod outbound;
pub mod patches;
pub mod pulls;
pub mod ratelimit;
pub mod refusals;
pub mod rollouts;
pub mod tenants;
pub mod users;
pub mod watch;
pub mod webhooks;
pub mod windows;
pub mod witnesses;

use std::sync::Arc;

use anyhow::Context;

pub use error::{ServiceError, ServiceResult};

use crate::config::Config;
use crate::db::{Db, DbConnection};
use crate::domain::event::Event;
use crate::domain::log::SignedHead;
use crate::domain::note::NoteSigner;
use crate::domain::openpgp::OpenPgpKey;
use crate::secrets::SealingKey;
use crate::signing::Signer;
use crate::storage::Storage;
use accounts::PasswordGate;
use advisories::PublishContext;
use fleet::Fleet;
use outbound::Outbound;
use patches::uploads::Writers;
use ratelimit::AttemptLimiter;

/// Evidence bundles a customer may build a minute: each flushes the fleet's
/// observations and may sign a head.
const EVIDENCE_PER_MINUTE: u32 = 20;
/// Webhook pings and deliveries sent again a customer may ask for a minute: each
/// is a request to a receiver the customer chose.
const WEBHOOK_REQUESTS_PER_MINUTE: u32 = 30;

/// What follows events, whoever caused them. A capability reports the events it
/// commits here, and so needs to know nothing of what reacts to them.
pub trait Reactions: Send + Sync {
    /// Runs inside the transaction that commits `events`, before their log entries
    /// are appended: what must commit with them (webhook events for customers).
    fn within(&self, conn: &mut DbConnection, events: &[Event]) -> Result<(), ServiceError>;

    /// Runs after `events` committed: caches brought up to date, and a tree head
    /// that covers them signed when devices must see them at once (returned).
    fn after<'a>(
        &'a self,
        services: &'a Services,
        events: &'a [Event],
    ) -> futures_util::future::BoxFuture<'a, Result<Option<SignedHead>, ServiceError>>;
}

/// What every service works with.
pub struct Services {
    pub config: Config,
    pub db: Db,
    pub signer: Arc<Signer>,
    /// The signing key as the log's C2SP note key, named by the log's origin.
    pub note_signer: Arc<NoteSigner>,
    /// The OpenPGP key that signs CSAF documents, derived from the signing key.
    pub openpgp: Arc<OpenPgpKey>,
    pub storage: Arc<Storage>,
    pub publish: PublishContext,
    pub login_limiter: AttemptLimiter,
    /// Device enrolments per enrolment token and per client address.
    pub enrol_limiter: AttemptLimiter,
    /// Devices and the offer catalogue in memory; observations waiting to be written.
    pub fleet: Fleet,
    /// Bounds the password checks that run at once (each takes ~19 MiB).
    pub password_gate: PasswordGate,
    /// Patches whose file a request of this instance is writing.
    pub writers: Writers,
    /// Seals pull tokens and webhook secrets at rest.
    pub sealing: Arc<SealingKey>,
    /// The client for pulls, with the address policy.
    pub outbound: Outbound,
    /// The client for webhook deliveries, with theirs (private networks denied too).
    pub webhook_outbound: Outbound,
    /// This instance's name in the leases it takes.
    pub instance: String,
    /// Pulls made by this instance, by outcome.
    pub pull_counts: pulls::scheduler::PullCounts,
    /// The newest signed tree head and the proofs polls carry.
    pub log: log::LogCache,
    /// What follows events.
    pub reactions: Arc<dyn Reactions>,
    /// Polls and reports each device may make a minute.
    pub device_rate: budget::Rate,
    /// Evidence bundles each customer may build a minute.
    pub evidence_budgets: budget::KeyedBudgets<crate::ids::CustomerId>,
    /// Webhook pings and deliveries sent again each customer may ask for a minute.
    pub webhook_budgets: budget::KeyedBudgets<crate::ids::CustomerId>,
    /// Requests refused to protect the service, by why.
    pub refusals: refusals::Refusals,
    /// What this instance knows of each witness of `witness_policy`.
    pub witness_tracker: witnesses::WitnessTracker,
    /// The public CSAF files, rendered once per catalogue generation.
    pub csaf_files: csaf::PublicFiles,
}

impl Services {
    /// Whether the database answers a query; the backend's name when it does.
    pub async fn ready(&self) -> Result<&'static str, ServiceError> {
        use diesel::connection::SimpleConnection;
        self.db
            .run(|conn| {
                conn.batch_execute("SELECT 1")
                    .map_err(|err| ServiceError::Unavailable(format!("database: {err}")))
            })
            .await?;
        Ok(self.db.url().backend_name())
    }

    /// Opens the database (applying migrations), loads and checks the signing key,
    /// and opens the patch storage, removing leftovers of interrupted uploads.
    pub async fn open(config: Config) -> anyhow::Result<Services> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let db = Db::open(&config.database, config.database_pool_size)?;
        let signer = Arc::new(keys::open_signer(&config, &db)?);
        let note_signer = Arc::new(log::note_signer(&signer, &config.log_origin)?);
        let openpgp = Arc::new(keys::open_openpgp(&config, &db, &signer).context("opening the OpenPGP key")?);
        let storage = Arc::new(Storage::open(&config.data_dir.join("patches"), config.s3.as_ref())?);
        let removed = storage
            .clean_leftovers()
            .await
            .context("cleaning interrupted uploads")?;
        if removed > 0 {
            tracing::info!(count = removed, "removed leftovers of interrupted uploads");
        }
        let sealing = {
            let mut conn = db.conn().context("taking a database connection")?;
            Arc::new(
                keys::open_sealing(&config.secrets_key_file, &mut conn)
                    .context("opening the secrets key (setting secrets_key_file)")?,
            )
        };
        let outbound = Outbound::for_pulls(&config).context("building the HTTP client for pulls")?;
        let webhook_outbound = Outbound::new(
            config.webhook_outbound.clone(),
            config.pulls.connect_timeout,
            config.pulls.per_host,
        )
        .context("building the HTTP client for webhooks")?;
        let instance = format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple());
        let reactions: Arc<dyn Reactions> = Arc::new(effects::Effects::new(&config)?);
        let services = Services {
            sealing,
            outbound,
            webhook_outbound,
            instance,
            pull_counts: Default::default(),
            log: Default::default(),
            login_limiter: AttemptLimiter::new("login", config.login_attempts_per_minute),
            enrol_limiter: AttemptLimiter::new("enrollment", config.enrollment_attempts_per_minute),
            fleet: Fleet::new(config.observation_queue_max),
            device_rate: budget::Rate::per_minute(config.device_requests_per_minute),
            evidence_budgets: budget::KeyedBudgets::new(budget::Rate::per_minute(
                std::num::NonZeroU32::MIN.saturating_add(EVIDENCE_PER_MINUTE - 1),
            )),
            webhook_budgets: budget::KeyedBudgets::new(budget::Rate::per_minute(
                std::num::NonZeroU32::MIN.saturating_add(WEBHOOK_REQUESTS_PER_MINUTE - 1),
            )),
            refusals: Default::default(),
            witness_tracker: Default::default(),
            csaf_files: Default::default(),
            password_gate: PasswordGate::new(config.workers.max(1)),
            publish: PublishContext::new(&config, signer.clone(), openpgp.clone(), reactions.clone()),
            reactions,
            config,
            db,
            signer,
            note_signer,
            openpgp,
            storage,
            writers: Writers::default(),
        };
        let removed = patches::uploads::clean_at_start(&services)
            .await
            .context("cleaning orphaned upload data")?;
        if removed > 0 {
            tracing::info!(count = removed, "removed upload data that no upload owns");
        }
        Fleet::sync(&services).await.context("loading the fleet")?;
        services
            .db
            .run(log::backfill)
            .await
            .context("logging what was published before the transparency log")?;
        let key = services.openpgp.clone();
        let signed = services
            .db
            .run(move |conn| advisories::sign_unsigned_csaf(conn, &key))
            .await
            .context("signing CSAF documents with the OpenPGP key")?;
        if signed > 0 {
            tracing::info!(count = signed, "signed earlier CSAF documents with the OpenPGP key");
        }
        log::sign_if_due(&services)
            .await
            .context("signing the log's tree head")?;
        log::follow(&services).await.context("loading the log's tree head")?;
        Ok(services)
    }
}
