//! The application state every handler receives: the [`Services`] plus what only the
//! HTTP layer needs (templates, request metrics). Built once at start; nothing here
//! is global.

use std::ops::Deref;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::services::Services;
use crate::templates::Templates;

pub struct AppState {
    pub services: Services,
    pub templates: Templates,
    pub metrics: Metrics,
}

impl AppState {
    /// Opens the services and loads the embedded templates.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        let services = Services::open(config).await?;
        Ok(AppState {
            services,
            templates: Templates::load()?,
            metrics: Metrics::new()?,
        })
    }
}

impl AsRef<Services> for AppState {
    fn as_ref(&self) -> &Services {
        &self.services
    }
}

/// Handlers reach the services (and the configuration) through the state.
impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
