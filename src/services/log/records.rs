//! The entries of the vendor's events, built from what was stored, so that an event
//! and the backfill of a server upgraded to the log write the same entry.

use crate::db::models::{PatchView, ReleaseImage, RevisionRecord, SigningKeyRecord};
use crate::domain::advisory::RevisionStatus;
use crate::domain::log::{advisory_subject, patch_subject, sha256_hex, LogKind};
use crate::services::ServiceError;
use crate::signing;

use super::{fields, Record};

/// An advisory revision: published, revised or withdrawn.
pub fn revision<'a>(public_id: &str, revision: &RevisionRecord, actor: &'a str) -> Record<'a> {
    let kind = match (revision.status, revision.revision) {
        (RevisionStatus::Withdrawn, _) => LogKind::AdvisoryWithdrawn,
        (_, 1) => LogKind::AdvisoryPublished,
        _ => LogKind::AdvisoryRevised,
    };
    Record {
        kind,
        subject: advisory_subject(public_id, revision.revision),
        actor,
        customer: None,
        fields: fields([
            ("revision", revision.revision.into()),
            ("sha256", sha256_hex(revision.document.as_bytes()).into()),
            ("signature_sha256", sha256_hex(revision.signature.as_bytes()).into()),
            ("key_id", revision.key_id.clone().into()),
        ]),
    }
}

/// A patch's publication, from the published patch.
pub fn patch_published<'a>(view: &PatchView, actor: &'a str) -> Result<Record<'a>, ServiceError> {
    let patch = &view.patch;
    let (Some(sha256), Some(size), Some(signature), Some(key_id)) =
        (&patch.sha256, patch.size, &patch.signature, &patch.key_id)
    else {
        return Err(ServiceError::internal(
            format!("logging patch {}", patch.id),
            "it has no file or signature",
        ));
    };
    Ok(Record {
        kind: LogKind::PatchPublished,
        subject: patch_subject(patch.id.as_str()),
        actor,
        customer: None,
        fields: fields([
            ("sha256", sha256.clone().into()),
            ("size", size.into()),
            ("signature_sha256", sha256_hex(signature.as_bytes()).into()),
            ("key_id", key_id.clone().into()),
            ("product", view.product.slug.clone().into()),
            ("version", patch.version.clone().into()),
            ("version_scheme", view.product.scheme().as_str().into()),
            ("platform", patch.platform.clone().into()),
            ("advisories", view.fixes.clone().into()),
            ("rollback", patch.rollback.into()),
        ]),
    })
}

/// A patch's yanking, from the yanked patch.
pub fn patch_yanked<'a>(view: &PatchView, actor: &'a str) -> Record<'a> {
    Record {
        kind: LogKind::PatchYanked,
        subject: patch_subject(view.patch.id.as_str()),
        actor,
        customer: None,
        fields: fields([("reason", view.patch.yank_reason.clone().into())]),
    }
}

/// A signing key introduced (with the hashes of the rotation statement that
/// introduced it, when one did) or retired.
pub fn key(kind: LogKind, key: &SigningKeyRecord) -> Record<'static> {
    let mut entry = fields([
        ("key_id", key.key_id.clone().into()),
        ("sha256", sha256_hex(key.public_key.as_bytes()).into()),
    ]);
    if kind == LogKind::KeyIntroduced {
        entry.insert("introduced_by".into(), key.introduced_by.clone().into());
        entry.insert(
            "statement_sha256".into(),
            key.statement.as_deref().map(|s| sha256_hex(s.as_bytes())).into(),
        );
        entry.insert(
            "statement_signature_sha256".into(),
            key.statement_signature
                .as_deref()
                .map(|s| sha256_hex(s.as_bytes()))
                .into(),
        );
        // A rotation forced by a leak: the log says so too, for auditors.
        if let Some(size) = key.statement.as_deref().and_then(signing::statement_compromised_after) {
            entry.insert("old_key_compromised_after".into(), size.into());
        }
    }
    Record {
        kind,
        subject: format!("key/{}", key.key_id),
        actor: "server",
        customer: None,
        fields: entry,
    }
}

/// A release image registered for `product` by `actor`.
pub fn image<'a>(product: &str, image: &ReleaseImage, actor: &'a str) -> Record<'a> {
    Record {
        kind: LogKind::ImageRegistered,
        subject: format!("image/{product}/{}", image.image_sha256),
        actor,
        customer: None,
        fields: fields([
            ("sha256", image.image_sha256.clone().into()),
            ("product", product.into()),
            ("version", image.version.clone().into()),
            ("platform", image.platform.clone().into()),
        ]),
    }
}
