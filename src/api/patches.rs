//! Patch bodies as the API sends and takes them, shared by the handlers and the
//! `patch upload` client.

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::db::models::utc;
use crate::db::models::{PatchUpload, PatchView};
use crate::domain::range::RangeInput;
use crate::domain::PatchState;
use crate::ids::PatchId;
use crate::services::ServiceError;
use crate::storage::StoredObject;

pub use crate::services::patches::PatchDraft;

type Timestamp = chrono::DateTime<chrono::Utc>;

#[derive(Debug, Serialize, Deserialize)]
pub struct PatchResponse {
    pub id: String,
    pub product: String,
    pub version: String,
    pub platform: Option<String>,
    pub applies_to: Vec<RangeInput>,
    pub fixes: Vec<String>,
    pub filename: String,
    pub state: PatchState,
    pub sha256: Option<String>,
    pub size: Option<i64>,
    pub yank_reason: Option<String>,
    pub key_id: Option<String>,
    pub signature: Option<String>,
    pub created_at: Timestamp,
    pub published_at: Option<Timestamp>,
    pub yanked_at: Option<Timestamp>,
    pub upload_url: Option<String>,
    pub download_url: String,
    pub signature_url: String,
    /// Signed as an explicit rollback to an older version.
    pub rollback: bool,
    /// On a publish or yank answer: the entry in the transparency log and a signed
    /// tree head that includes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<crate::api::log::Logged>,
}

impl PatchResponse {
    pub fn of(config: &Config, view: PatchView) -> Result<Self, ServiceError> {
        let PatchView { patch, product, fixes } = view;
        let applies_to: Vec<RangeInput> =
            serde_json::from_str(&patch.applies_to).map_err(|e| ServiceError::internal("a stored range list", e))?;
        let id = patch.id.to_string();
        Ok(PatchResponse {
            upload_url: (patch.state == PatchState::Draft).then(|| config.url(&format!("/api/v1/patches/{id}/file"))),
            download_url: config.url(&format!("/api/v1/patches/{id}/download")),
            signature_url: config.url(&format!("/api/v1/patches/{id}/minisig")),
            id,
            product: product.slug,
            version: patch.version,
            platform: patch.platform,
            applies_to,
            fixes,
            filename: patch.filename,
            state: patch.state,
            sha256: patch.sha256,
            size: patch.size,
            yank_reason: patch.yank_reason,
            key_id: patch.key_id,
            signature: patch.signature,
            created_at: utc(patch.created_at),
            published_at: patch.published_at.map(utc),
            yanked_at: patch.yanked_at.map(utc),
            rollback: patch.rollback,
            log: None,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeginUpload {
    /// The whole file's size in bytes.
    pub size: u64,
    /// The whole file's SHA-256, when the client knows it.
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct UploadResponse {
    pub patch: String,
    pub size: i64,
    pub sha256: Option<String>,
    pub offset: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub expires_at: chrono::DateTime<chrono::Utc>,
    pub upload_url: String,
}

impl UploadResponse {
    pub fn of(config: &Config, upload: &PatchUpload) -> UploadResponse {
        let idle = chrono::TimeDelta::from_std(crate::services::patches::uploads::IDLE_LIMIT).unwrap_or_default();
        UploadResponse {
            patch: upload.patch_id.to_string(),
            size: upload.size,
            sha256: upload.sha256.clone(),
            offset: upload.received,
            created_at: utc(upload.created_at),
            updated_at: utc(upload.updated_at),
            expires_at: utc(upload.updated_at + idle),
            upload_url: config.url(&format!("/api/v1/patches/{}/upload", upload.patch_id)),
        }
    }
}

/// The answer when a request stored the whole file.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredFileResponse {
    pub id: String,
    pub sha256: String,
    pub size: u64,
}

impl StoredFileResponse {
    pub fn of(patch: &PatchId, stored: StoredObject) -> Self {
        StoredFileResponse {
            id: patch.to_string(),
            sha256: stored.sha256,
            size: stored.size,
        }
    }
}
