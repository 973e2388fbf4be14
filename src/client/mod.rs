//! HTTP clients of a patchwarden server: `patch upload`, which sends a file through
//! the resumable upload API. They speak the wire types of `crate::api`.

pub mod upload;
