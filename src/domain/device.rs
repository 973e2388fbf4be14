//! The device protocol's messages, defined once for both sides: enrolment, the poll
//! and its answer's offer, install reports, the signing keys, and what a device
//! answers a pull. The server reads the requests with these types (unknown fields
//! refused) and the agent writes them with the same types, so the compiler keeps
//! the two in step. They need nothing of the server, so the agent builds without
//! it; `crate::api::device` is where the rest of the code names them.

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::domain::log::{ConsistencyProof, OfferLog, Revocation, SignedHead};
use crate::domain::{ReportState, RolloutState};

/// `POST /api/v1/device/enroll`: a device enrolling itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    pub enrollment_token: String,
    pub name: String,
    pub product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Where the device answers pulls, pulled on the customer's default schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_url: Option<String>,
    /// The bearer token the device expects on a pull.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_token: Option<String>,
}

/// The identity an enrolment hands out.
#[derive(Clone, Debug, Deserialize)]
pub struct Enrolled {
    pub id: String,
    pub token: String,
}

/// `POST /api/v1/device/poll`: what a device runs, and how fresh its view of the
/// log is.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    /// The platform it runs on, when it was enrolled without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// The tag of the last answer; when the answer is the same, it is not repeated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<String>,
    /// The size of the newest tree head the device holds: the answer then brings
    /// the consistency proof from it when the server has it at hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
    /// How old (seconds) the newest genuine tree head the device holds is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_age_s: Option<u64>,
    /// The device has held no genuine head for longer than its `stale_after`: it is
    /// being cut off from genuine answers, or frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
}

/// The poll answer. The agent reads it with the default parameters; the server
/// writes it with each part rendered once (per offer and per head) and passed
/// through as raw JSON — the same fields, names and order, kept in step by the
/// compiler.
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(
    deserialize = "U: Deserialize<'de>, H: Deserialize<'de>, C: Deserialize<'de>, R: Deserialize<'de>, K: Deserialize<'de>, W: Deserialize<'de>"
))]
pub struct PollResponse<U = Offer, H = SignedHead, C = ConsistencyProof, R = Vec<Revocation>, K = Vec<String>, W = Held>
{
    /// Absent when `unchanged`; `null` when there is nothing to install.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Option<U>>,
    /// The device already holds this answer (it sent its tag).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchanged: bool,
    /// Names this answer; sent back as the poll's `catalogue`.
    pub catalogue: String,
    pub poll_interval_s: u64,
    /// The latest signed tree head; re-signed every few minutes, so it also says
    /// the answer is fresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_head: Option<H>,
    /// The witnesses' `tlog-cosignature/v1` lines for `log_head`'s checkpoint, as
    /// the server has gathered them; an agent with a witness policy counts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_cosignatures: Option<K>,
    /// From the size the device said it holds to `log_head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_consistency: Option<C>,
    /// With an offer: the patches yanked within `log_head`'s tree, which the head's
    /// signature commits to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<R>,
    /// The update this device would be offered is held back by a rollout: which,
    /// in what state, and the rollout's latest log entry with its inclusion in
    /// `log_head`, so the device can check the claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<W>,
}

impl<U, H, C, R, K, W> PollResponse<U, H, C, R, K, W> {
    /// The update offered, if any.
    pub fn offer(&self) -> Option<&U> {
        self.update.as_ref().and_then(Option::as_ref)
    }
}

/// Why an update is held back from a device: the rollout of its patch, the state
/// the server says it is in, and the rollout's latest entry in the log.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Held {
    pub rollout: String,
    pub patch_id: String,
    pub state: RolloutState,
    pub log: OfferLog,
}

/// An update offered to a device; `L` is its log entry and inclusion proof (the
/// server renders the offer without it once, and adds it per head).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(bound(deserialize = "L: Deserialize<'de>"))]
pub struct Offer<L = OfferLog> {
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
    pub log: Option<L>,
    /// The rollout the device is offered the patch in: which, its wave, its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<OfferRollout>,
    /// When set: download now, install not before this (the device's maintenance
    /// window opens then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_after: Option<chrono::DateTime<chrono::Utc>>,
    /// Install now, or download now and install at `install_after`. Always last,
    /// so that the server renders it per device by changing the end of the offer.
    #[serde(default)]
    pub install: Install,
}

/// When a device installs what it is offered.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Install {
    #[default]
    Now,
    /// Outside the device's maintenance window: download now, install at the window.
    Deferred,
}

/// The rollout a device is offered a patch in.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OfferRollout {
    pub id: String,
    /// The device's wave; absent when it is offered the patch outside the waves
    /// (its customer took all its devices in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<u32>,
    pub state: RolloutState,
}

impl<L> Offer<L> {
    /// Whether the device should wait before installing, at `now`: until when.
    pub fn deferred_at(&self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        match (self.install, self.install_after) {
            (Install::Deferred, Some(after)) if after > now => Some(after),
            _ => None,
        }
    }
}

impl<L> Offer<L> {
    /// The same offer with `log` as its log entry.
    pub fn with_log<M>(&self, log: M) -> Offer<M> {
        Offer {
            patch_id: self.patch_id.clone(),
            version: self.version.clone(),
            platform: self.platform.clone(),
            filename: self.filename.clone(),
            download_url: self.download_url.clone(),
            sha256: self.sha256.clone(),
            size: self.size,
            signature: self.signature.clone(),
            advisories: self.advisories.clone(),
            emergency: self.emergency,
            rollback: self.rollback,
            log: Some(log),
            rollout: self.rollout.clone(),
            install_after: self.install_after,
            install: self.install,
        }
    }
}

/// `POST /api/v1/device/report`: an install step.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub patch_id: String,
    pub state: ReportState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
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
