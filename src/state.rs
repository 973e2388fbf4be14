//! The application state every handler receives: configuration, database, signing
//! key, templates, metrics and the login limiter. Built once at start; nothing here
//! is global.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;
use crate::db::models::{now, SigningKeyRecord};
use crate::db::Db;
use crate::metrics::Metrics;
use crate::publishing::PublishContext;
use crate::ratelimit::LoginLimiter;
use crate::resumable::{self, Writers};
use crate::signing::{PublicKeyInfo, Signer};
use crate::storage::Storage;
use crate::templates::Templates;

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub signer: Arc<Signer>,
    pub storage: Arc<Storage>,
    pub publish: PublishContext,
    pub templates: Templates,
    pub metrics: Metrics,
    pub login_limiter: LoginLimiter,
    /// Patches whose file a request of this instance is writing.
    pub writers: Writers,
}

impl AppState {
    /// Opens the database (applying migrations) and the patch storage (removing
    /// leftovers of interrupted uploads), loads the signing key (creating a
    /// development key when there is none) and the embedded templates.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let db = Db::open(&config.database, config.database_pool_size)?;
        let signer = Arc::new(load_signer(&config)?);
        let mut conn = db.conn().context("taking a database connection")?;
        register_keys(&mut conn, &signer, &config.keys_dir)?;
        drop(conn);
        let storage = Arc::new(Storage::open(&config.data_dir.join("patches"), config.s3.as_ref())?);
        let removed = storage
            .clean_leftovers()
            .await
            .context("cleaning interrupted uploads")?;
        if removed > 0 {
            tracing::info!(count = removed, "removed leftovers of interrupted uploads");
        }
        let templates = Templates::load()?;
        let metrics = Metrics::new()?;
        let login_limiter = LoginLimiter::new(config.login_attempts_per_minute);
        let publish = PublishContext::new(&config, signer.clone());
        let state = AppState {
            config,
            db,
            signer,
            storage,
            publish,
            templates,
            metrics,
            login_limiter,
            writers: Writers::default(),
        };
        let removed = resumable::clean_at_start(&state)
            .await
            .context("cleaning idle and orphaned uploads")?;
        if removed > 0 {
            tracing::info!(count = removed, "removed idle or orphaned resumable uploads");
        }
        Ok(state)
    }
}

/// The configured key, or a new unencrypted development key when there is none.
fn load_signer(config: &Config) -> anyhow::Result<Signer> {
    let password = config.key_password.as_ref().map(|p| p.expose().to_owned());
    if Signer::exists(&config.keys_dir) {
        return Signer::load(&config.keys_dir, password).context("loading the signing key (setting keys_dir)");
    }
    let signer = Signer::generate(&config.keys_dir, None).context("creating a development signing key")?;
    tracing::warn!(
        key.id = signer.key_id(),
        keys_dir = %config.keys_dir.display(),
        "NO SIGNING KEY WAS CONFIGURED: created an UNENCRYPTED development key. \
         Do not publish with it; run `patchwarden keygen` for a password-protected key."
    );
    Ok(signer)
}

/// Records the active key in the database, with the rotation statement that
/// introduced it when one sits beside it, and any retired keys found in
/// `keys_dir/retired` that the database does not know yet.
fn register_keys(conn: &mut crate::db::DbConnection, signer: &Signer, keys_dir: &Path) -> anyhow::Result<()> {
    let at = now();
    let retired = keys_dir.join("retired");
    if retired.is_dir() {
        for entry in std::fs::read_dir(&retired).with_context(|| format!("reading {}", retired.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "pub") {
                let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                let info = PublicKeyInfo::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                if SigningKeyRecord::find(conn, &info.key_id)?.is_none() {
                    // The public key file was written when the key was made; a rename keeps that time.
                    let made = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .with_context(|| format!("reading the time of {}", path.display()))?;
                    let created = chrono::DateTime::<chrono::Utc>::from(made).naive_utc();
                    crate::db::models::signing_key::insert(conn, &record(&info, created, Some(at), None))?;
                }
            }
        }
    }
    let key_id = signer.key_id();
    let statement_path = keys_dir.join(format!("rotation-{key_id}.txt"));
    let rotation = if statement_path.is_file() {
        let statement = std::fs::read_to_string(&statement_path)
            .with_context(|| format!("reading {}", statement_path.display()))?;
        let signature_path = keys_dir.join(format!("rotation-{key_id}.txt.minisig"));
        let signature = std::fs::read_to_string(&signature_path)
            .with_context(|| format!("reading {}", signature_path.display()))?;
        let old = statement
            .lines()
            .find_map(|l| l.strip_prefix("old key: "))
            .map(str::to_owned)
            .context("the rotation statement names no old key")?;
        Some((old, statement, signature))
    } else {
        None
    };
    SigningKeyRecord::activate(conn, &record(signer.public_key(), at, None, rotation), at)?;
    Ok(())
}

fn record(
    info: &PublicKeyInfo,
    created_at: chrono::NaiveDateTime,
    retired_at: Option<chrono::NaiveDateTime>,
    rotation: Option<(String, String, String)>,
) -> SigningKeyRecord {
    let (introduced_by, statement, statement_signature) = match rotation {
        Some((old, statement, signature)) => (Some(old), Some(statement), Some(signature)),
        None => (None, None, None),
    };
    SigningKeyRecord {
        key_id: info.key_id.clone(),
        public_key: info.text.clone(),
        created_at,
        retired_at,
        introduced_by,
        statement,
        statement_signature,
    }
}
