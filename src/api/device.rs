//! The device protocol's wire types as a device sends and reads them: enrolment,
//! the poll answer and its offer, install reports, the signing keys, and what a
//! device answers a pull. They need nothing of the server, so the device agent
//! builds without it.

use serde::{Deserialize, Serialize};

use crate::api::log::{ConsistencyProof, OfferLog, SignedHead};
use crate::domain::log::Revocation;
use crate::domain::ReportState;

/// `POST /api/v1/device/enroll`, as a device sends it.
#[derive(Clone, Debug, Serialize)]
pub struct Enrolment<'a> {
    pub enrollment_token: &'a str,
    pub name: &'a str,
    pub product: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<&'a str>,
    pub version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_token: Option<&'a str>,
}

/// The identity an enrolment hands out.
#[derive(Clone, Debug, Deserialize)]
pub struct Enrolled {
    pub id: String,
    pub token: String,
}

/// `POST /api/v1/device/poll`, as a device sends it.
#[derive(Clone, Debug, Serialize)]
pub struct Poll<'a> {
    pub version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<&'a str>,
    /// The size of the newest tree head the device holds: the answer then brings
    /// the consistency proof from it when the server has it at hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
    /// How old (seconds) the newest genuine tree head the device holds is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_age_s: Option<u64>,
    /// The device has held no genuine head for longer than its `stale_after`: it is
    /// being cut off from genuine answers, or frozen.
    pub stale: bool,
}

/// The poll answer as a client reads it.
#[derive(Debug, Deserialize)]
pub struct PollResponse {
    #[serde(default)]
    pub update: Option<Offer>,
    #[serde(default)]
    pub unchanged: bool,
    pub catalogue: String,
    pub poll_interval_s: u64,
    /// The latest signed tree head; re-signed every few minutes, so it also says
    /// the answer is fresh.
    #[serde(default)]
    pub log_head: Option<SignedHead>,
    /// From the size the device said it holds to `log_head`.
    #[serde(default)]
    pub log_consistency: Option<ConsistencyProof>,
    /// With an offer: the patches yanked within `log_head`'s tree, which the head's
    /// signature commits to.
    #[serde(default)]
    pub revoked: Option<Vec<Revocation>>,
}

/// An update offered to a device.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Offer {
    pub patch_id: String,
    pub version: String,
    pub platform: Option<String>,
    pub filename: String,
    pub download_url: String,
    pub sha256: String,
    pub size: u64,
    pub signature: String,
    pub advisories: Vec<String>,
    pub emergency: bool,
    /// Signed as an explicit rollback: the one case a device goes to an older version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// The patch's entry in the log and its inclusion in `log_head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<OfferLog>,
}

/// `POST /api/v1/device/report`, as a device sends it.
#[derive(Clone, Debug, Serialize)]
pub struct Report<'a> {
    pub patch_id: &'a str,
    pub state: ReportState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

pub use crate::signing::KeyResponse;

/// What a device answers a pull: `200 {"version", "image_sha256"?, "head_age_s"?,
/// "stale"?}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Pulled {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// How old (seconds) the newest genuine tree head the device holds is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_age_s: Option<u64>,
    /// Whether that is past the device's `stale_after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
}
