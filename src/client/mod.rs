//! HTTP clients of a patchwarden server: `patch upload`, which sends a file through
//! the resumable upload API, `audit`, which checks the server's transparency log
//! (and evidence bundles offline), and the reference device agent. They speak the wire
//! types of `crate::api`.

pub mod agent;
#[cfg(feature = "server")]
pub mod audit;
#[cfg(feature = "server")]
pub mod upload;
