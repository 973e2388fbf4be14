//! The application state every handler receives: configuration, database, templates,
//! metrics and the login limiter. Built once at start; nothing here is global.

use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::ratelimit::LoginLimiter;
use crate::templates::Templates;

pub struct AppState {
    pub config: Config,
    pub db: Db,
    pub templates: Templates,
    pub metrics: Metrics,
    pub login_limiter: LoginLimiter,
}

impl AppState {
    /// Opens the database (applying migrations) and loads the embedded templates.
    pub fn build(config: Config) -> anyhow::Result<AppState> {
        std::fs::create_dir_all(&config.data_dir).map_err(|err| {
            anyhow::anyhow!("creating data_dir {}: {err}", config.data_dir.display())
        })?;
        let db = Db::open(&config.database, config.database_pool_size)?;
        let templates = Templates::load()?;
        let metrics = Metrics::new()?;
        let login_limiter = LoginLimiter::new(config.login_attempts_per_minute);
        Ok(AppState {
            config,
            db,
            templates,
            metrics,
            login_limiter,
        })
    }
}
