//! HTTP plumbing that handlers share and that is no handler itself: extractor
//! limits and body reading, byte ranges and validators for downloads, the pieces
//! every HTML page uses, the advisory form, and the session cookie.

pub mod advisory_form;
pub mod cookies;
pub mod extract;
pub mod pages;
pub mod ranges;
pub mod views;

use chrono::{DateTime, NaiveDateTime, Utc};

/// A stored UTC timestamp as an RFC 3339 value.
pub fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}
