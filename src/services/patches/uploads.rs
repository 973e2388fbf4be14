//! Resumable uploads of patch files. A vendor declares the size, then sends the file
//! in as many requests as the connection allows, each from the offset the server
//! reports; the server records how far it got after every request, also one that
//! broke off, and keeps the bytes across restarts. When the last byte arrives the
//! file is hashed, checked against the draft's expected SHA-256 and stored like a
//! file sent in one `PUT`. Uploads idle for a day are removed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use diesel::Connection;
use futures_util::Stream;

use crate::db::models::{now, PatchRecord, PatchUpload};
use crate::domain::patch::{read_count, stored_count, Sha256};
use crate::domain::Caller;
use crate::domain::PatchState;
use crate::ids::PatchId;
use crate::services::error::ServiceError;
use crate::services::patches::parse_sha256;
use crate::services::Services;

use super::PatchReader;
use crate::storage::{PartialUpload, StorageError, StoredObject};

/// An upload that received nothing for this long is removed.
pub const IDLE_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// The patches whose file a request of this instance is writing: one writer per
/// patch at a time; a second waits briefly (a client that resumes right after its
/// connection dropped meets the request that is still recording the broken one).
#[derive(Default)]
pub struct Writers(Mutex<HashMap<PatchId, Arc<tokio::sync::Mutex<()>>>>);

/// How long a request waits for another writer of the same patch.
const WRITER_WAIT: Duration = Duration::from_secs(10);

/// One request's claim on writing a patch's file; released when dropped.
pub struct WriterClaim<'a> {
    writers: &'a Writers,
    patch: PatchId,
    held: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Writers {
    fn lock_for(&self, patch: &PatchId) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.entry(patch.clone()).or_default().clone()
    }

    fn busy() -> ServiceError {
        ServiceError::Conflict("another request is writing this patch's file; retry when it ends".into())
    }

    /// Claims the right to write `patch`'s file, waiting a little for another writer.
    pub async fn claim(&self, patch: &PatchId) -> Result<WriterClaim<'_>, ServiceError> {
        let lock = self.lock_for(patch);
        let mut claim = WriterClaim {
            writers: self,
            patch: patch.clone(),
            held: None,
        };
        let held = tokio::time::timeout(WRITER_WAIT, lock.lock_owned())
            .await
            .map_err(|_| Self::busy())?;
        claim.held = Some(held);
        Ok(claim)
    }

    /// Claims the right to write `patch`'s file if no one holds it.
    pub fn try_claim(&self, patch: &PatchId) -> Result<WriterClaim<'_>, ServiceError> {
        let held = self.lock_for(patch).try_lock_owned().map_err(|_| Self::busy())?;
        Ok(WriterClaim {
            writers: self,
            patch: patch.clone(),
            held: Some(held),
        })
    }
}

impl Drop for WriterClaim<'_> {
    fn drop(&mut self) {
        let mut map = self.writers.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(self.held.take());
        // The map's reference is the last one: nobody holds or waits for this patch.
        if map.get(&self.patch).is_some_and(|lock| Arc::strong_count(lock) == 1) {
            map.remove(&self.patch);
        }
    }
}

/// The draft `id` as `caller` sees it: 404 for what it may not see.
async fn draft_of(services: &Services, caller: &Caller, id: String) -> Result<PatchRecord, ServiceError> {
    Ok(super::view(services, PatchReader::from(&caller.scope), id).await?.patch)
}

/// Stores a whole file for the draft `id` (see [`store_whole`]).
pub async fn put_file<S, E>(
    services: &Services,
    caller: &Caller,
    id: String,
    declared: Option<u64>,
    body: S,
) -> Result<(PatchId, StoredObject), ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let patch = draft_of(services, caller, id).await?;
    let stored = store_whole(services, &patch, declared, body).await?;
    Ok((patch.id, stored))
}

/// Starts a resumable upload for the draft `id` (see [`begin`]).
pub async fn start(
    services: &Services,
    caller: &Caller,
    id: String,
    size: u64,
    sha256: Option<&str>,
) -> Result<PatchUpload, ServiceError> {
    let patch = draft_of(services, caller, id).await?;
    let upload = begin(services, &patch, size, sha256).await?;
    tracing::info!(patch.id = %patch.id, size = upload.size, user.id = %caller.user, "started resumable upload");
    Ok(upload)
}

/// The unfinished upload of the patch `id`; 404 when there is none.
pub async fn progress(services: &Services, caller: &Caller, id: String) -> Result<PatchUpload, ServiceError> {
    let patch = draft_of(services, caller, id).await?;
    status(services, &patch.id)
        .await?
        .ok_or(ServiceError::NotFound("upload"))
}

/// Appends a body to the upload of the patch `id` (see [`append`]).
pub async fn resume<S, E>(
    services: &Services,
    caller: &Caller,
    id: String,
    offset: u64,
    declared: Option<u64>,
    body: S,
) -> Result<(PatchId, Progress), ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let patch = draft_of(services, caller, id).await?;
    let progress = append(services, &patch, offset, declared, body).await?;
    match &progress {
        Progress::Partial {
            upload,
            interrupted: Some(_),
        } => tracing::info!(patch.id = %patch.id, offset = upload.received, "resumable upload broke off"),
        Progress::Complete(stored) => {
            tracing::info!(patch.id = %patch.id, sha256 = %stored.sha256, size = stored.size, "stored patch file")
        }
        Progress::Partial { .. } => {}
    }
    Ok((patch.id, progress))
}

/// Cancels the upload of the patch `id` (see [`cancel`]).
pub async fn abandon(services: &Services, caller: &Caller, id: String) -> Result<(), ServiceError> {
    let patch = draft_of(services, caller, id).await?;
    cancel(services, &patch).await?;
    tracing::info!(patch.id = %patch.id, user.id = %caller.user, "cancelled resumable upload");
    Ok(())
}

/// Maps a storage failure to the answer a client gets.
pub fn storage_error(err: StorageError) -> ServiceError {
    match err {
        StorageError::TooLarge { .. } | StorageError::BeyondSize { .. } => ServiceError::TooLarge(err.to_string()),
        StorageError::HashMismatch { .. } => ServiceError::invalid("sha256", err.to_string()),
        StorageError::Interrupted(_) => ServiceError::Malformed(err.to_string()),
        StorageError::Lost => ServiceError::Conflict(err.to_string()),
        StorageError::Backend(cause) => ServiceError::Internal(cause.context("storing a patch file")),
    }
}

fn partial_of(row: &PatchUpload) -> Result<PartialUpload, ServiceError> {
    let parts: Vec<String> = serde_json::from_str(&row.parts).map_err(|e| ServiceError::Internal(e.into()))?;
    Ok(PartialUpload {
        key: row.storage_key.clone(),
        multipart_id: row.multipart_id.clone(),
        parts,
        size: read_count(row.size).map_err(|e| ServiceError::internal("an upload record", e))?,
        received: read_count(row.received).map_err(|e| ServiceError::internal("an upload record", e))?,
    })
}

fn parts_json(upload: &PartialUpload) -> Result<String, ServiceError> {
    serde_json::to_string(&upload.parts).map_err(|e| ServiceError::Internal(e.into()))
}

fn to_i64(n: u64) -> Result<i64, ServiceError> {
    stored_count(n).map_err(ServiceError::TooLarge)
}

/// Refuses a change to the file of a patch that is no longer a draft.
pub fn ensure_draft(patch: &PatchRecord) -> Result<(), ServiceError> {
    if patch.state == PatchState::Draft {
        Ok(())
    } else {
        Err(ServiceError::Conflict(format!(
            "the patch is {}; its file can no longer change",
            patch.state
        )))
    }
}

/// Stores `body` as the whole file of a draft (a `PUT`), streamed and hashed on
/// the way; `declared` is the length the request announced, refused unread when it
/// is over the limit. Any unfinished resumable upload of the draft is dropped.
async fn store_whole<S, E>(
    services: &Services,
    patch: &PatchRecord,
    declared: Option<u64>,
    body: S,
) -> Result<StoredObject, ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    ensure_draft(patch)?;
    let limit = services.config.max_patch_bytes;
    if declared.is_some_and(|len| len > limit) {
        return Err(ServiceError::TooLarge(format!(
            "the file is larger than the limit of {limit} bytes"
        )));
    }
    let _claim = services.writers.claim(&patch.id).await?;
    let stored = services
        .storage
        .put(body, patch.expected_sha256.as_deref(), limit)
        .await
        .map_err(storage_error)?;
    let (patch_id, sha256) = (patch.id.clone(), stored.sha256.clone());
    let size = i64::try_from(stored.size).map_err(|e| ServiceError::internal("a stored size", e))?;
    let changed = services
        .db
        .query(move |conn| PatchRecord::set_file(conn, &patch_id, &sha256, size, now()))
        .await?;
    if changed == 0 {
        return Err(ServiceError::Conflict("the patch was published meanwhile".into()));
    }
    discard(services, &patch.id).await?;
    tracing::info!(patch.id = %patch.id, sha256 = %stored.sha256, size = stored.size, "stored patch file");
    Ok(stored)
}

/// Starts an upload of `size` bytes for a draft, in place of any earlier one. With
/// `sha256` the finished file must have that hash, and a client can tell its own
/// unfinished upload from another file's.
async fn begin(
    services: &Services,
    patch: &PatchRecord,
    size: u64,
    sha256: Option<&str>,
) -> Result<PatchUpload, ServiceError> {
    ensure_draft(patch)?;
    let sha256 = sha256
        .map(|text| parse_sha256("sha256", text).map(Sha256::into_string))
        .transpose()?;
    if let (Some(declared), Some(expected)) = (&sha256, &patch.expected_sha256) {
        if declared != expected {
            return Err(ServiceError::invalid(
                "sha256",
                format!("the draft expects a file with SHA-256 {expected}, not {declared}"),
            ));
        }
    }
    if size == 0 {
        return Err(ServiceError::invalid("size", "a patch file has at least one byte"));
    }
    let limit = services.config.max_patch_bytes;
    if size > limit {
        return Err(ServiceError::TooLarge(format!(
            "the file is larger than the limit of {limit} bytes"
        )));
    }
    let _claim = services.writers.claim(&patch.id).await?;
    let partial = services.storage.begin_upload(size).await.map_err(storage_error)?;
    let at = now();
    let row = PatchUpload {
        patch_id: patch.id.clone(),
        storage_key: partial.key.clone(),
        multipart_id: partial.multipart_id.clone(),
        parts: parts_json(&partial)?,
        size: to_i64(size)?,
        sha256,
        received: 0,
        created_at: at,
        updated_at: at,
    };
    let record = row.clone();
    let previous = match services.db.query(move |conn| PatchUpload::replace(conn, &record)).await {
        Ok(previous) => previous,
        Err(err) => {
            services.storage.abort_upload(&partial).await;
            return Err(err.into());
        }
    };
    if let Some(previous) = previous {
        services.storage.abort_upload(&partial_of(&previous)?).await;
    }
    Ok(row)
}

/// The patch's upload in progress, if any.
pub async fn status(services: &Services, patch: &PatchId) -> Result<Option<PatchUpload>, ServiceError> {
    let patch = patch.clone();
    Ok(services.db.query(move |conn| PatchUpload::find(conn, &patch)).await?)
}

/// Where an upload stands after a request.
pub enum Progress {
    /// More bytes are expected; `interrupted` says why the body ended early.
    Partial {
        upload: PatchUpload,
        interrupted: Option<String>,
    },
    /// The file is complete, checked and stored for the patch.
    Complete(StoredObject),
}

/// Appends `body` at `offset`, which must be where the upload stands; a body whose
/// announced length (`declared`) would run past the upload's size is refused unread.
async fn append<S, E>(
    services: &Services,
    patch: &PatchRecord,
    offset: u64,
    declared: Option<u64>,
    body: S,
) -> Result<Progress, ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    ensure_draft(patch)?;
    let _claim = services.writers.claim(&patch.id).await?;
    let row = status(services, &patch.id)
        .await?
        .ok_or(ServiceError::NotFound("upload"))?;
    let before = partial_of(&row)?;
    if declared.is_some_and(|length| offset.saturating_add(length) > before.size) {
        return Err(storage_error(StorageError::BeyondSize { size: before.size }));
    }
    if offset != before.received {
        return Err(ServiceError::Conflict(format!(
            "the upload holds {} bytes; send from offset {}, not {offset}",
            before.received, before.received
        )));
    }
    let appended = services
        .storage
        .append_upload(&before, body)
        .await
        .map_err(storage_error)?;
    let after = appended.upload;
    let mut row = row;
    if after != before {
        let (patch_id, from, received, parts, at) = (
            patch.id.clone(),
            row.received,
            to_i64(after.received)?,
            parts_json(&after)?,
            now(),
        );
        row.received = received;
        row.parts = parts.clone();
        row.updated_at = at;
        let moved = services
            .db
            .query(move |conn| PatchUpload::advance(conn, &patch_id, from, received, &parts, at))
            .await?;
        if moved == 0 {
            return Err(ServiceError::Conflict(
                "the upload was changed by another request".into(),
            ));
        }
        services.storage.drop_superseded(&before, &after).await;
    }
    if appended.interrupted.is_some() || !after.is_complete() {
        return Ok(Progress::Partial {
            upload: row,
            interrupted: appended.interrupted,
        });
    }
    let finished = services
        .storage
        .finish_upload(
            &after,
            appended.sha256,
            row.sha256.as_deref().or(patch.expected_sha256.as_deref()),
        )
        .await;
    let (patch_id, key) = (patch.id.clone(), row.storage_key.clone());
    let stored = match finished {
        Ok(stored) => stored,
        Err(err) => {
            services
                .db
                .query(move |conn| PatchUpload::delete(conn, &patch_id, &key))
                .await?;
            return Err(storage_error(err));
        }
    };
    let (sha256, size) = (stored.sha256.clone(), to_i64(stored.size)?);
    let changed = services
        .db
        .run(move |conn| {
            conn.transaction::<_, ServiceError, _>(|conn| {
                PatchUpload::delete(conn, &patch_id, &key)?;
                Ok(PatchRecord::set_file(conn, &patch_id, &sha256, size, now())?)
            })
        })
        .await?;
    if changed == 0 {
        return Err(ServiceError::Conflict("the patch was published meanwhile".into()));
    }
    Ok(Progress::Complete(stored))
}

/// Cancels the patch's upload in progress and removes its bytes.
async fn cancel(services: &Services, patch: &PatchRecord) -> Result<(), ServiceError> {
    let _claim = services.writers.claim(&patch.id).await?;
    let row = status(services, &patch.id)
        .await?
        .ok_or(ServiceError::NotFound("upload"))?;
    forget(services, &row).await
}

/// Removes an upload: its record first, so no request resumes it, then its bytes.
async fn forget(services: &Services, row: &PatchUpload) -> Result<(), ServiceError> {
    let partial = partial_of(row)?;
    let (patch_id, key) = (row.patch_id.clone(), row.storage_key.clone());
    services
        .db
        .query(move |conn| PatchUpload::delete(conn, &patch_id, &key))
        .await?;
    services.storage.abort_upload(&partial).await;
    Ok(())
}

/// Drops the upload in progress of a patch whose file was just stored another way.
pub async fn discard(services: &Services, patch: &PatchId) -> Result<(), ServiceError> {
    match status(services, patch).await? {
        Some(row) => forget(services, &row).await,
        None => Ok(()),
    }
}

/// Removes uploads idle for longer than [`IDLE_LIMIT`] and those of patches that are
/// no longer drafts; returns how many. An upload a request is writing is left for
/// the next run.
pub async fn expire_idle(services: &Services) -> Result<usize, ServiceError> {
    let rows = services.db.query(PatchUpload::all).await?;
    let cutoff =
        now() - chrono::TimeDelta::from_std(IDLE_LIMIT).map_err(|e| ServiceError::internal("the idle limit", e))?;
    let mut removed = 0;
    for (row, patch_state) in rows {
        if patch_state != PatchState::Draft || row.updated_at < cutoff {
            if let Ok(_claim) = services.writers.try_claim(&row.patch_id) {
                forget(services, &row).await?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// At start, before any request: removes partial data that no upload owns (left by
/// an upload whose record was never written). Idle uploads are the sweep job's.
/// Returns how many items were removed.
pub async fn clean_at_start(services: &Services) -> anyhow::Result<usize> {
    let keep: HashSet<String> = services
        .db
        .query(PatchUpload::all)
        .await
        .map_err(|e| anyhow::anyhow!("reading the upload records: {e}"))?
        .into_iter()
        .map(|(row, _)| row.storage_key)
        .collect();
    services.storage.clean_uploads(&keep).await
}
