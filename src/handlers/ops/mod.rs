//! For operators and the page assets: liveness, readiness, metrics, the stylesheet,
//! the upload script and the OpenAPI description.

pub mod assets;
pub mod health;
pub mod metrics;
