//! HTTP clients of a patchwarden server: `patch upload`, which sends a file through
//! the resumable upload API, and the reference device agent. They speak the wire
//! types of `crate::api`.

pub mod agent;
#[cfg(feature = "server")]
pub mod upload;
