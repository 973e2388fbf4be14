//! Patches: drafts, the streamed file upload, signing at publication and yanking;
//! and who may read and download a patch. The trusted comment of a patch signature
//! binds product, target version, platform, SHA-256 and the advisories it fixes, so a
//! genuine file cannot be passed off as another patch.

pub mod uploads;

use std::collections::HashSet;
use std::io::Read;

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::db::models::patch::is_entitled;

use crate::db::models::{now, AdvisoryRecord, Generations, NewPatch, PatchRecord, PatchUpload, PatchView, Product};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::log::Logged;
use crate::domain::patch::{FileName, Platform, Sha256};
use crate::domain::range::{RangeInput, VersionRange};
use crate::domain::{text, Caller, PatchState, Scope};
use crate::ids::{AdvisoryId, CustomerId, PatchId};
use crate::services::error::ServiceError;
use crate::services::log;
use crate::services::Services;
use crate::storage::ByteStream;

/// A new patch as the vendor describes it, before its file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchDraft {
    pub product: String,
    pub version: String,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub applies_to: Vec<RangeInput>,
    #[serde(default)]
    pub fixes: Vec<String>,
    pub filename: String,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Signed as an explicit rollback: it takes devices on the versions it applies
    /// to back to an older `version`.
    #[serde(default)]
    pub rollback: bool,
}

/// Parses a SHA-256 given in `field`.
pub fn parse_sha256(field: &str, text: &str) -> Result<Sha256, ServiceError> {
    text.parse().map_err(|e: String| ServiceError::invalid(field, e))
}

/// Creates a draft patch.
pub fn create(conn: &mut DbConnection, draft: &PatchDraft) -> Result<PatchRecord, ServiceError> {
    let product = Product::find_by_slug(conn, &draft.product)?
        .ok_or_else(|| ServiceError::invalid("product", format!("there is no product `{}`", draft.product)))?;
    let scheme = product.scheme();
    let version = scheme
        .parse(draft.version.trim())
        .map_err(|e| ServiceError::invalid("version", format!("not a {scheme} version: {e}")))?;
    let platform: Option<Platform> = draft
        .platform
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.parse().map_err(|e: String| ServiceError::invalid("platform", e)))
        .transpose()?;
    let mut ranges: Vec<VersionRange> = Vec::new();
    for (i, raw) in draft.applies_to.iter().enumerate() {
        let range = VersionRange::parse(scheme, raw)
            .map_err(|(end, e)| ServiceError::invalid(format!("applies_to[{i}].{end}"), e))?;
        if let Some(j) = ranges.iter().position(|r| r.overlaps(&range)) {
            return Err(ServiceError::invalid(
                format!("applies_to[{i}]"),
                format!("overlaps applies_to[{j}]"),
            ));
        }
        if range.contains(&version) {
            return Err(ServiceError::invalid(
                format!("applies_to[{i}]"),
                format!("the target version {version} lies inside the range it upgrades from"),
            ));
        }
        if draft.rollback && *range.introduced() <= version {
            return Err(ServiceError::invalid(
                format!("applies_to[{i}]"),
                format!("a rollback goes back to {version}, so it applies only to versions above it"),
            ));
        }
        ranges.push(range);
    }
    let mut fixes: Vec<AdvisoryId> = Vec::new();
    for (i, key) in draft.fixes.iter().enumerate() {
        let advisory = AdvisoryRecord::find(conn, key)?
            .ok_or_else(|| ServiceError::invalid(format!("fixes[{i}]"), format!("there is no advisory `{key}`")))?;
        if !fixes.contains(&advisory.id) {
            fixes.push(advisory.id);
        }
    }
    let filename: FileName = draft
        .filename
        .parse()
        .map_err(|e: String| ServiceError::invalid("filename", e))?;
    let expected = draft.sha256.as_deref().map(|s| parse_sha256("sha256", s)).transpose()?;
    let applies_to = serde_json::to_string(&ranges.iter().map(VersionRange::to_input).collect::<Vec<_>>())
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let id = PatchId::generate();
    let version_text = version.to_string();
    PatchRecord::insert(
        conn,
        &NewPatch {
            id: &id,
            product_id: &product.id,
            version: &version_text,
            platform: platform.as_ref().map(Platform::as_str),
            applies_to: &applies_to,
            filename: filename.as_str(),
            expected_sha256: expected.as_ref().map(Sha256::as_str),
            state: PatchState::Draft.as_str(),
            created_at: now(),
            rollback: draft.rollback,
        },
        &fixes,
    )?;
    PatchRecord::find(conn, &id)?
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("a patch vanished after its insert")))
}

/// The trusted comment that binds a patch signature to what the patch is, with the
/// version scheme its versions are ordered in.
pub fn trusted_comment(view: &PatchView, sha256: &str) -> String {
    let fixes = if view.fixes.is_empty() {
        "none".to_owned()
    } else {
        view.fixes.join(",")
    };
    let rollback = if view.patch.rollback { " rollback=yes" } else { "" };
    format!(
        "patchwarden patch id={} product={} version={} scheme={} platform={} sha256={sha256} advisories={fixes}{rollback}",
        view.patch.id,
        view.product.slug,
        view.patch.version,
        view.product.scheme(),
        view.patch.platform.as_deref().unwrap_or("any"),
    )
}

/// Who reads a patch: the vendor, or a customer (through its admins). Devices join
/// as a third kind of reader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchReader {
    Vendor,
    Customer(CustomerId),
}

impl From<&Scope> for PatchReader {
    fn from(scope: &Scope) -> Self {
        match scope {
            Scope::Vendor => PatchReader::Vendor,
            Scope::Customer(id) => PatchReader::Customer(id.clone()),
        }
    }
}

impl PatchReader {
    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            PatchReader::Vendor => None,
            PatchReader::Customer(id) => Some(id),
        }
    }
}

/// The patch `id` if `reader` may see it; 404 otherwise, whatever the reason.
pub fn visible(conn: &mut DbConnection, reader: &PatchReader, id: &str) -> Result<PatchView, ServiceError> {
    let not_found = || ServiceError::NotFound("patch");
    let id: PatchId = id.parse().map_err(|_| not_found())?;
    let view = PatchRecord::view(conn, &id)?.ok_or_else(not_found)?;
    match reader {
        PatchReader::Vendor => Ok(view),
        PatchReader::Customer(customer) => {
            if view.patch.state == PatchState::Draft || !is_entitled(conn, customer, &view.product.id)? {
                Err(not_found())
            } else {
                Ok(view)
            }
        }
    }
}

/// Creates a draft patch and returns it with its product.
pub async fn create_draft(services: &Services, caller: &Caller, draft: PatchDraft) -> Result<PatchView, ServiceError> {
    let view = services
        .db
        .run(move |conn| {
            let patch = create(conn, &draft)?;
            PatchRecord::view(conn, &patch.id)?.ok_or(ServiceError::NotFound("patch"))
        })
        .await?;
    tracing::info!(patch.id = %view.patch.id, user.id = %caller.user, "created patch draft");
    Ok(view)
}

/// The patches `reader` may see, newest first; customers see no drafts.
pub async fn list(services: &Services, reader: PatchReader) -> Result<Vec<PatchView>, ServiceError> {
    Ok(services
        .db
        .query(move |conn| PatchRecord::list(conn, reader.customer()))
        .await?)
}

/// A patch as the vendor screen shows it: with its unfinished upload, if any.
pub async fn with_upload(services: &Services, id: String) -> Result<(PatchView, Option<PatchUpload>), ServiceError> {
    services
        .db
        .run(move |conn| {
            let view = visible(conn, &PatchReader::Vendor, &id)?;
            let pending = PatchUpload::find(conn, &view.patch.id)?;
            Ok((view, pending))
        })
        .await
}

/// Hands the event of the entry at `index` to what follows it; the entry's place
/// in the log, under the head signed for it.
async fn followed(services: &Services, event: Event) -> Result<Logged, ServiceError> {
    let tree_head = services
        .reactions
        .after(services, std::slice::from_ref(&event))
        .await?
        .ok_or_else(|| ServiceError::internal("a patch event", "no tree head covers it"))?;
    // The head was signed over the tree with every entry committed before it.
    let index = log::index_of(services, &event).await?;
    Ok(Logged { index, tree_head })
}

/// Yanks a published patch (see [`yank`]) and logs who did.
pub async fn yank_published(
    services: &Services,
    caller: &Caller,
    id: String,
    reason: String,
) -> Result<(PatchView, Logged), ServiceError> {
    let actor = caller.actor();
    let view = services
        .db
        .run(move |conn| conn.write_transaction(|conn| yank(conn, &actor, &id, &reason)))
        .await?;
    let logged = followed(services, log::records::patch_yanked(&view)).await?;
    tracing::info!(patch.id = %view.patch.id, user.id = %caller.user, log.index = logged.index, "yanked patch");
    Ok((view, logged))
}

/// A patch whose file may be downloaded now.
pub struct Downloadable {
    pub view: PatchView,
    pub sha256: String,
    pub size: u64,
}

/// The patch `id` if `reader` may download it: 410 with the reason once yanked,
/// 404 when it is not visible or has no file.
pub async fn downloadable(services: &Services, reader: PatchReader, id: String) -> Result<Downloadable, ServiceError> {
    let view = view(services, reader, id).await?;
    if view.patch.state == PatchState::Yanked {
        return Err(ServiceError::Gone(format!(
            "this patch was yanked: {}",
            view.patch.yank_reason.as_deref().unwrap_or("no reason given")
        )));
    }
    let (Some(sha256), Some(size)) = (view.patch.sha256.clone(), view.patch.size) else {
        return Err(ServiceError::NotFound("patch file"));
    };
    let size = u64::try_from(size).map_err(|e| ServiceError::internal("a stored patch size", e))?;
    Ok(Downloadable { view, sha256, size })
}

/// Where a front nginx finds the file `sha256`, when downloads are offloaded to it.
pub fn offload_path(services: &Services, sha256: &str) -> Option<String> {
    let prefix = services.config.download_offload_prefix.as_ref()?;
    Some(format!("{prefix}{}", services.storage.local_key(sha256)?))
}

/// Bytes `start..=end` of the stored file `sha256`.
pub async fn read_range(services: &Services, sha256: &str, start: u64, end: u64) -> Result<ByteStream, ServiceError> {
    services
        .storage
        .read(sha256, start, end)
        .await
        .map_err(|e| ServiceError::internal("reading the patch file", e))
}

/// The patch `id` if `reader` may see it; 404 otherwise.
pub async fn view(services: &Services, reader: PatchReader, id: String) -> Result<PatchView, ServiceError> {
    services.db.run(move |conn| visible(conn, &reader, &id)).await
}

/// Signs the stored file of a draft and publishes it. Every advisory it fixes must
/// be published (a signature must not carry an id the world cannot look up), and the
/// bytes signed are hashed on the way: a stored file that is not the one recorded
/// (an object replaced in the bucket) gets no signature.
pub async fn publish(services: &Services, caller: &Caller, id: &str) -> Result<(PatchView, Logged), ServiceError> {
    let lookup = id.to_owned();
    let (view, drafts) = services
        .db
        .run(move |conn| {
            let view = visible(conn, &PatchReader::Vendor, &lookup)?;
            let drafts = PatchRecord::unpublished_fixes(conn, &view.patch.id)?;
            Ok::<_, ServiceError>((view, drafts))
        })
        .await?;
    if view.patch.state != PatchState::Draft {
        return Err(ServiceError::Conflict(format!(
            "the patch is already {}",
            view.patch.state
        )));
    }
    if let Some((advisory, title)) = drafts.first() {
        return Err(ServiceError::Conflict(format!(
            "the patch fixes advisory {advisory} (“{title}”), which is not published; publish it first"
        )));
    }
    let (Some(sha256), Some(size)) = (view.patch.sha256.clone(), view.patch.size) else {
        return Err(ServiceError::Conflict(
            "upload the file before publishing (PUT /api/v1/patches/{id}/file)".into(),
        ));
    };
    let size = u64::try_from(size).map_err(|e| ServiceError::internal("a stored patch size", e))?;
    let comment = trusted_comment(&view, &sha256);
    let reader = services
        .storage
        .reader(&sha256, size)
        .await
        .map_err(|e| ServiceError::internal("opening the patch file", e))?;
    let signer = services.signer.clone();
    let (signature, read) = tokio::task::spawn_blocking(move || {
        let mut hashing = HashingReader::new(reader);
        let signature = signer.sign_reader(&mut hashing, &comment);
        (signature, hashing.finish())
    })
    .await
    .map_err(|e| ServiceError::internal("signing a patch", e))?;
    let signature = signature.map_err(ServiceError::Internal)?;
    if read != (sha256.clone(), size) {
        tracing::error!(
            patch.id = %view.patch.id,
            recorded.sha256 = %sha256,
            stored.sha256 = %read.0,
            stored.size = read.1,
            "the stored patch file is not the one recorded; refusing to sign it"
        );
        return Err(ServiceError::Conflict(format!(
            "the stored file hashes to {} ({} bytes), not to the recorded {sha256} ({size} bytes); \
             it was not signed — upload the file again",
            read.0, read.1
        )));
    }
    let key_id = services.signer.key_id().to_owned();
    let actor = caller.actor();
    let logged_view = view.clone();
    let published = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let view = logged_view;
                let patch_id = &view.patch.id;
                let changed = PatchRecord::set_published(conn, patch_id, &sha256, &signature, &key_id, now())?;
                if changed == 0 {
                    return Ok::<_, ServiceError>(None);
                }
                Generations::catalogue_changed(conn)?;
                let published = visible(conn, &PatchReader::Vendor, patch_id.as_str())?;
                log::append(conn, &log::records::patch_published(&published)?, &actor)?;
                Ok(Some(()))
            })
        })
        .await?;
    let Some(()) = published else {
        return Err(ServiceError::Conflict(
            "the patch changed meanwhile; reload it and try again".into(),
        ));
    };
    let lookup = view.patch.id.to_string();
    let view = services
        .db
        .run(move |conn| visible(conn, &PatchReader::Vendor, &lookup))
        .await?;
    let logged = followed(services, log::records::patch_published(&view)?).await?;
    tracing::info!(patch.id = %view.patch.id, user.id = %caller.user, log.index = logged.index, "published patch");
    Ok((view, logged))
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: sha2::Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: sha2::Sha256::new(),
            count: 0,
        }
    }

    /// The hex SHA-256 and the length of everything read.
    fn finish(self) -> (String, u64) {
        (hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// How long a stored file that no patch references is kept: an upload stores its
/// file before it records it, and the sweep must not race that.
const UNREFERENCED_GRACE: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Removes stored files that no patch references (a draft whose file was replaced)
/// and that are older than the grace period; returns how many.
pub async fn sweep_unreferenced_files(services: &Services) -> Result<usize, ServiceError> {
    let files = services
        .storage
        .list_files()
        .await
        .map_err(|e| ServiceError::internal("listing stored files", e))?;
    let referenced: HashSet<String> = services
        .db
        .query(PatchRecord::referenced_files)
        .await?
        .into_iter()
        .collect();
    let cutoff = chrono::Utc::now() - UNREFERENCED_GRACE;
    let mut removed = 0;
    for file in files {
        if file.written_at < cutoff && !referenced.contains(&file.sha256) {
            services
                .storage
                .remove_file(&file.sha256)
                .await
                .map_err(|e| ServiceError::internal("removing an unreferenced file", e))?;
            tracing::info!(sha256 = %file.sha256, "removed a stored file that no patch references");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Yanks a published patch: no longer offered or served, still listed with `reason`;
/// returns it.
pub fn yank(conn: &mut DbConnection, actor: &Actor, id: &str, reason: &str) -> Result<PatchView, ServiceError> {
    let reason = text::REASON.check("reason", reason, true)?;
    let view = visible(conn, &PatchReader::Vendor, id)?;
    if PatchRecord::set_yanked(conn, &view.patch.id, &reason, now())? == 0 {
        return Err(ServiceError::Conflict(format!(
            "only a published patch can be yanked; this one is {}",
            view.patch.state
        )));
    }
    Generations::catalogue_changed(conn)?;
    let yanked = visible(conn, &PatchReader::Vendor, view.patch.id.as_str())?;
    log::append(conn, &log::records::patch_yanked(&yanked), actor)?;
    Ok(yanked)
}
