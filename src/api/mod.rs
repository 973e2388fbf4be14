//! Wire types: the request and response bodies of the API that more than one side
//! uses (handlers and pages, the server and its clients). Each is defined once.

#[cfg(feature = "server")]
pub mod advisories;
pub mod device;
#[cfg(feature = "server")]
pub mod events;
#[cfg(feature = "server")]
pub mod fleet;
pub mod log;
#[cfg(feature = "server")]
pub mod patches;
#[cfg(feature = "server")]
pub mod rollouts;

use serde::Deserialize;

/// An error answer of the API, as a client reads it.
#[derive(Debug, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default)]
    pub field: Option<String>,
}
