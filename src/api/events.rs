//! Wire types of pulls, anomalies, release images and webhooks.

use serde::{Deserialize, Serialize};

use crate::db::models::{
    utc, DevicePull, ListedAnomaly, LoggedDelivery, PullFailureRecord, ReleaseImage, WebhookRecord,
};

pub use crate::services::anomalies::Acknowledgement;
pub use crate::services::images::ImageDraft;
pub use crate::services::pulls::{PullResult, PullSettingsDraft};
pub use crate::services::webhooks::WebhookDraft;

type Timestamp = chrono::DateTime<chrono::Utc>;

/// Where and when a device is pulled, and how its pulls go (never its token).
#[derive(Debug, Serialize, Deserialize)]
pub struct PullStatusResponse {
    pub url: String,
    /// Its own schedule; `null` when it follows its customer's default.
    pub schedule: Option<String>,
    pub has_token: bool,
    pub next_pull_at: Option<Timestamp>,
    pub failures: i32,
    pub unreachable_since: Option<Timestamp>,
    pub last_attempt_at: Option<Timestamp>,
    pub last_success_at: Option<Timestamp>,
    pub last_failure: Option<String>,
}

impl From<&DevicePull> for PullStatusResponse {
    fn from(p: &DevicePull) -> Self {
        PullStatusResponse {
            url: p.url.clone(),
            schedule: p.schedule.as_ref().map(|s| s.as_str().to_owned()),
            has_token: p.token_sealed.is_some(),
            next_pull_at: p.due_at.map(utc),
            failures: p.failures,
            unreachable_since: p.unreachable_since.map(utc),
            last_attempt_at: p.last_attempt_at.map(utc),
            last_success_at: p.last_success_at.map(utc),
            last_failure: p.last_failure.clone(),
        }
    }
}

/// Failed pulls in a device's history, identical ones in a row folded.
#[derive(Debug, Serialize, Deserialize)]
pub struct PullFailureResponse {
    pub reason: String,
    pub detail: String,
    pub first_at: Timestamp,
    pub last_at: Timestamp,
    pub times: i64,
}

impl From<&PullFailureRecord> for PullFailureResponse {
    fn from(f: &PullFailureRecord) -> Self {
        PullFailureResponse {
            reason: f.reason.to_string(),
            detail: f.detail.clone(),
            first_at: utc(f.first_at),
            last_at: utc(f.last_at),
            times: f.times,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AcknowledgedBy {
    pub by: String,
    pub at: Timestamp,
    pub comment: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AnomalyResponse {
    pub id: String,
    pub kind: String,
    pub description: String,
    pub detail: String,
    pub device: DeviceRef,
    pub version: Option<String>,
    pub image_sha256: Option<String>,
    pub detected_at: Timestamp,
    /// How often it was seen while open: a device that keeps misbehaving leaves one
    /// open anomaly of each kind, counting.
    pub occurrences: u32,
    /// When it was last seen again, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_detected_at: Option<Timestamp>,
    pub acknowledged: Option<AcknowledgedBy>,
}

impl From<&ListedAnomaly> for AnomalyResponse {
    fn from(listed: &ListedAnomaly) -> Self {
        let a = &listed.anomaly;
        AnomalyResponse {
            id: a.id.to_string(),
            kind: a.kind.to_string(),
            description: a.kind.describe().to_owned(),
            detail: a.detail.clone(),
            device: DeviceRef {
                id: a.device_id.to_string(),
                name: listed.device_name.clone(),
            },
            version: a.version.clone(),
            image_sha256: a.image_sha256.clone(),
            detected_at: utc(a.detected_at),
            occurrences: u32::try_from(a.occurrences).unwrap_or(1),
            last_detected_at: a.last_detected_at.map(utc),
            acknowledged: match (&a.acknowledged_by, a.acknowledged_at) {
                (Some(by), Some(at)) => Some(AcknowledgedBy {
                    by: by.to_string(),
                    at: utc(at),
                    comment: a.ack_comment.clone().unwrap_or_default(),
                }),
                _ => None,
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AnomalyList {
    pub anomalies: Vec<AnomalyResponse>,
}

/// The anomaly list's query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyQuery {
    /// `open`, `acknowledged` or `all` (the default).
    #[serde(default)]
    pub state: Option<String>,
}

impl AnomalyQuery {
    pub fn open(&self) -> Result<Option<bool>, crate::services::ServiceError> {
        match self.state.as_deref() {
            None | Some("all") => Ok(None),
            Some("open") => Ok(Some(true)),
            Some("acknowledged") => Ok(Some(false)),
            Some(other) => Err(crate::services::ServiceError::invalid(
                "state",
                format!("`{other}` is not a state: open, acknowledged or all"),
            )),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImageResponse {
    pub id: String,
    pub version: String,
    pub platform: Option<String>,
    pub image_sha256: String,
    pub created_at: Timestamp,
}

impl From<&ReleaseImage> for ImageResponse {
    fn from(i: &ReleaseImage) -> Self {
        ImageResponse {
            id: i.id.to_string(),
            version: i.version.clone(),
            platform: Some(i.platform.clone()).filter(|p| !p.is_empty()),
            image_sha256: i.image_sha256.clone(),
            created_at: utc(i.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<ImageResponse>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookResponse {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub created_at: Timestamp,
    /// Only in the answer that created it: `whsec_…`, the key of the signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookResponse {
    pub fn of(hook: &WebhookRecord, secret: Option<&str>) -> Self {
        WebhookResponse {
            id: hook.id.to_string(),
            url: hook.url.clone(),
            events: hook.events.0.iter().map(|e| e.to_string()).collect(),
            created_at: utc(hook.created_at),
            secret: secret.map(str::to_owned),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookResponse>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveryResponse {
    pub id: String,
    /// The `webhook-id` header: the same on every try.
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<Timestamp>,
    pub delivered_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl From<&LoggedDelivery> for DeliveryResponse {
    fn from(l: &LoggedDelivery) -> Self {
        let d = &l.delivery;
        DeliveryResponse {
            id: d.id.to_string(),
            event_id: d.event_id.clone(),
            event_type: l.event_type.to_string(),
            state: d.state.to_string(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.map(utc),
            last_status: d.last_status,
            last_error: d.last_error.clone(),
            last_attempt_at: d.last_attempt_at.map(utc),
            delivered_at: d.delivered_at.map(utc),
            created_at: utc(d.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryResponse>,
}

/// A customer's default pull schedule.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultSchedule {
    pub schedule: Option<String>,
}
