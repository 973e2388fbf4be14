//! What a device runs and how fresh its view of the log is: shared between the
//! agent and its pull endpoint, so a pull answers what the agent knows now.

use std::sync::RwLock;
use std::time::Duration;

use crate::api::device::Pulled;

/// What the device runs, shared with its pull endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Running {
    pub version: String,
    pub image_sha256: Option<String>,
}

impl Running {
    /// What `shared` holds now.
    pub fn of(shared: &RwLock<Running>) -> Running {
        shared
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// As a pull answers it, with how fresh the device's view of the log is.
    pub fn pulled(self, freshness: Freshness) -> Pulled {
        let now = chrono::Utc::now();
        Pulled {
            version: self.version,
            image_sha256: self.image_sha256,
            head_age_s: freshness.head_age_s(now),
            stale: Some(freshness.stale(now)),
        }
    }
}

/// How fresh the genuine answers a device gets are: when the newest tree head it
/// holds was signed, against its `stale_after`. Shared with its pull endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Freshness {
    /// When the newest genuine head held was signed; `None` before the first.
    pub head_signed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the agent started: a device that never got a genuine head counts from then.
    pub since: chrono::DateTime<chrono::Utc>,
    pub stale_after: Duration,
}

impl Freshness {
    /// What `shared` holds now.
    pub fn of(shared: &RwLock<Freshness>) -> Freshness {
        *shared.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The age of the newest genuine head, in seconds, at `now`.
    pub fn head_age_s(&self, now: chrono::DateTime<chrono::Utc>) -> Option<u64> {
        self.head_signed_at
            .map(|at| u64::try_from((now - at).num_seconds()).unwrap_or(0))
    }

    /// Whether the device has gone `stale_after` without a genuine head at `now`.
    pub fn stale(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let from = self.head_signed_at.unwrap_or(self.since);
        (now - from).to_std().is_ok_and(|age| age > self.stale_after)
    }
}
