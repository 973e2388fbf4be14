//! HTTP handlers, one file per resource. Handlers parse the request, call the
//! account and model functions, and shape the response; the route table is in
//! `crate::routes`.

pub mod advisories;
pub mod csaf;
pub mod customers;
pub mod download;
pub mod entitlements;
pub mod extract;
pub mod feeds;
pub mod health;
pub mod keys;
pub mod me;
pub mod metrics;
pub mod pages;
pub mod patches;
pub mod products;
pub mod query;
pub mod session;
pub mod tokens;
pub mod uploads;
pub mod users;

use chrono::{DateTime, NaiveDateTime, Utc};

/// A stored UTC timestamp as an RFC 3339 value.
pub fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}
