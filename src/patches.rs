//! Patches: drafts, the streamed file upload, signing at publication and yanking;
//! and who may read and download a patch. The trusted comment of a patch signature
//! binds product, target version, platform, SHA-256 and the advisories it fixes, so a
//! genuine file cannot be passed off as another patch.

use serde::Deserialize;

use crate::auth::{AuthUser, Scope};
use crate::db::models::patch::is_entitled;
use crate::db::models::{now, AdvisoryRecord, NewPatch, PatchRecord, PatchView, Product};
use crate::db::DbConnection;
use crate::domain::range::{RangeInput, VersionRange};
use crate::error::AppError;
use crate::ids::{AdvisoryId, CustomerId, PatchId};

/// Patch states.
pub mod state {
    pub const DRAFT: &str = "draft";
    pub const PUBLISHED: &str = "published";
    pub const YANKED: &str = "yanked";
}

/// A new patch as the vendor describes it, before its file.
#[derive(Clone, Debug, Deserialize)]
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
}

/// A file name that is safe in a `Content-Disposition` header and on any disk.
pub fn check_filename(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "filename",
            format!("`{name}` is not a plain file name (letters, digits, . _ - +; no paths; at most 200 characters)"),
        ))
    }
}

/// A SHA-256 as 64 lower-case hex digits.
pub fn parse_sha256(field: &str, text: &str) -> Result<String, AppError> {
    let hash = text.trim().to_ascii_lowercase();
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash)
    } else {
        Err(AppError::invalid(
            field,
            format!("`{text}` is not a SHA-256 (64 hex digits)"),
        ))
    }
}

/// Creates a draft patch.
pub fn create(conn: &mut DbConnection, draft: &PatchDraft) -> Result<PatchRecord, AppError> {
    let product = Product::find_by_slug(conn, &draft.product)?
        .ok_or_else(|| AppError::invalid("product", format!("there is no product `{}`", draft.product)))?;
    let scheme = product.scheme();
    let version = scheme
        .parse(draft.version.trim())
        .map_err(|e| AppError::invalid("version", format!("not a {scheme} version: {e}")))?;
    let platform = match draft.platform.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => None,
        Some(p)
            if p.len() <= 64
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
        {
            Some(p)
        }
        Some(p) => {
            return Err(AppError::invalid(
                "platform",
                format!("`{p}` is not a platform name (letters, digits, . _ -)"),
            ))
        }
    };
    let mut ranges: Vec<VersionRange> = Vec::new();
    for (i, raw) in draft.applies_to.iter().enumerate() {
        let range = VersionRange::parse(scheme, raw)
            .map_err(|(end, e)| AppError::invalid(format!("applies_to[{i}].{end}"), e))?;
        if let Some(j) = ranges.iter().position(|r| r.overlaps(&range)) {
            return Err(AppError::invalid(
                format!("applies_to[{i}]"),
                format!("overlaps applies_to[{j}]"),
            ));
        }
        if range.contains(&version) {
            return Err(AppError::invalid(
                format!("applies_to[{i}]"),
                format!("the target version {version} lies inside the range it upgrades from"),
            ));
        }
        ranges.push(range);
    }
    let mut fixes: Vec<AdvisoryId> = Vec::new();
    for (i, key) in draft.fixes.iter().enumerate() {
        let advisory = AdvisoryRecord::find(conn, key)?
            .ok_or_else(|| AppError::invalid(format!("fixes[{i}]"), format!("there is no advisory `{key}`")))?;
        if !fixes.contains(&advisory.id) {
            fixes.push(advisory.id);
        }
    }
    check_filename(&draft.filename)?;
    let expected = draft.sha256.as_deref().map(|s| parse_sha256("sha256", s)).transpose()?;
    let applies_to = serde_json::to_string(&ranges.iter().map(VersionRange::to_input).collect::<Vec<_>>())
        .map_err(|e| AppError::Internal(e.into()))?;
    let id = PatchId::generate();
    let version_text = version.to_string();
    PatchRecord::insert(
        conn,
        &NewPatch {
            id: &id,
            product_id: &product.id,
            version: &version_text,
            platform,
            applies_to: &applies_to,
            filename: &draft.filename,
            expected_sha256: expected.as_deref(),
            state: state::DRAFT,
            created_at: now(),
        },
        &fixes,
    )?;
    PatchRecord::find(conn, &id)?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("a patch vanished after its insert")))
}

/// The trusted comment that binds a patch signature to what the patch is.
pub fn trusted_comment(view: &PatchView, sha256: &str) -> String {
    let fixes = if view.fixes.is_empty() {
        "none".to_owned()
    } else {
        view.fixes.join(",")
    };
    format!(
        "patchwarden patch id={} product={} version={} platform={} sha256={sha256} advisories={fixes}",
        view.patch.id,
        view.product.slug,
        view.patch.version,
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

impl PatchReader {
    pub fn of(user: &AuthUser) -> Self {
        match &user.scope {
            Scope::Vendor => PatchReader::Vendor,
            Scope::Customer(id) => PatchReader::Customer(id.clone()),
        }
    }

    pub fn customer(&self) -> Option<&CustomerId> {
        match self {
            PatchReader::Vendor => None,
            PatchReader::Customer(id) => Some(id),
        }
    }
}

/// The patch `id` if `reader` may see it; 404 otherwise, whatever the reason.
pub fn visible(conn: &mut DbConnection, reader: &PatchReader, id: &str) -> Result<PatchView, AppError> {
    let not_found = || AppError::NotFound("patch");
    let id: PatchId = id.parse().map_err(|_| not_found())?;
    let view = PatchRecord::view(conn, &id)?.ok_or_else(not_found)?;
    match reader {
        PatchReader::Vendor => Ok(view),
        PatchReader::Customer(customer) => {
            if view.patch.state == state::DRAFT || !is_entitled(conn, customer, &view.product.id)? {
                Err(not_found())
            } else {
                Ok(view)
            }
        }
    }
}

/// Signs the stored file of a draft and publishes it.
pub async fn publish(state: &crate::state::AppState, id: &str) -> Result<PatchView, AppError> {
    let lookup = id.to_owned();
    let view = state
        .db
        .run(move |conn| visible(conn, &PatchReader::Vendor, &lookup))
        .await?;
    if view.patch.state != state::DRAFT {
        return Err(AppError::Conflict(format!("the patch is already {}", view.patch.state)));
    }
    let (Some(sha256), Some(size)) = (view.patch.sha256.clone(), view.patch.size) else {
        return Err(AppError::Conflict(
            "upload the file before publishing (PUT /api/v1/patches/{id}/file)".into(),
        ));
    };
    let comment = trusted_comment(&view, &sha256);
    let reader = state
        .storage
        .reader(&sha256, u64::try_from(size).unwrap_or(0))
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("opening the patch file: {e}")))?;
    let signer = state.signer.clone();
    let signature = actix_web::web::block(move || signer.sign_reader(reader, &comment))
        .await?
        .map_err(AppError::Internal)?;
    let key_id = state.signer.key_id().to_owned();
    let patch_id = view.patch.id.clone();
    let changed = state
        .db
        .run(move |conn| {
            Ok(PatchRecord::set_published(
                conn,
                &patch_id,
                &sha256,
                &signature,
                &key_id,
                now(),
            )?)
        })
        .await?;
    if changed == 0 {
        return Err(AppError::Conflict(
            "the patch changed meanwhile; reload it and try again".into(),
        ));
    }
    Ok(view)
}

/// Yanks a published patch: no longer offered or served, still listed with `reason`.
pub fn yank(conn: &mut DbConnection, id: &str, reason: &str) -> Result<PatchView, AppError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 2000 || reason.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "reason",
            "a reason is required (one line, at most 2000 characters): customers see it",
        ));
    }
    let view = visible(conn, &PatchReader::Vendor, id)?;
    if PatchRecord::set_yanked(conn, &view.patch.id, reason, now())? == 0 {
        return Err(AppError::Conflict(format!(
            "only a published patch can be yanked; this one is {}",
            view.patch.state
        )));
    }
    Ok(view)
}
