//! The events of what the vendor published, made from what was stored, so that an
//! event and the backfill of a server upgraded to the log write the same entry.

use crate::db::models::{PatchView, ReleaseImage, RevisionRecord, SigningKeyRecord};
use crate::domain::advisory::RevisionStatus;
use crate::domain::event::{Event, IntroducedKey, PublishedPatch, Revision};
use crate::domain::log::sha256_hex;
use crate::services::ServiceError;
use crate::signing;

/// An advisory revision: published, revised or withdrawn.
pub fn revision(public_id: &str, revision: &RevisionRecord) -> Event {
    let logged = Revision {
        public_id: public_id.to_owned(),
        revision: revision.revision,
        sha256: sha256_hex(revision.document.as_bytes()),
        signature_sha256: sha256_hex(revision.signature.as_bytes()),
        key_id: revision.key_id.clone(),
    };
    match (revision.status, revision.revision) {
        (RevisionStatus::Withdrawn, _) => Event::AdvisoryWithdrawn(logged),
        (_, 1) => Event::AdvisoryPublished(logged),
        _ => Event::AdvisoryRevised(logged),
    }
}

/// A patch's publication, from the published patch.
pub fn patch_published(view: &PatchView) -> Result<Event, ServiceError> {
    let patch = &view.patch;
    let (Some(sha256), Some(size), Some(signature), Some(key_id)) =
        (&patch.sha256, patch.size, &patch.signature, &patch.key_id)
    else {
        return Err(ServiceError::internal(
            format!("logging patch {}", patch.id),
            "it has no file or signature",
        ));
    };
    Ok(Event::PatchPublished(PublishedPatch {
        patch: patch.id.clone(),
        sha256: sha256.clone(),
        size,
        signature_sha256: sha256_hex(signature.as_bytes()),
        key_id: key_id.clone(),
        product: view.product.slug.clone(),
        version: patch.version.clone(),
        version_scheme: view.product.scheme().as_str().to_owned(),
        platform: patch.platform.clone(),
        advisories: view.fixes.clone(),
        rollback: patch.rollback,
    }))
}

/// A patch's yanking, from the yanked patch.
pub fn patch_yanked(view: &PatchView) -> Event {
    Event::PatchYanked {
        patch: view.patch.id.clone(),
        reason: view.patch.yank_reason.clone(),
    }
}

/// A signing key introduced, with the hashes of the rotation statement that
/// introduced it when one did (and, for a rotation forced by a leak, the log size
/// after which the old key is compromised).
pub fn key_introduced(key: &SigningKeyRecord) -> Event {
    Event::KeyIntroduced(IntroducedKey {
        key_id: key.key_id.clone(),
        sha256: sha256_hex(key.public_key.as_bytes()),
        introduced_by: key.introduced_by.clone(),
        statement_sha256: key.statement.as_deref().map(|s| sha256_hex(s.as_bytes())),
        statement_signature_sha256: key.statement_signature.as_deref().map(|s| sha256_hex(s.as_bytes())),
        old_key_compromised_after: key.statement.as_deref().and_then(signing::statement_compromised_after),
    })
}

/// A signing key retired.
pub fn key_retired(key: &SigningKeyRecord) -> Event {
    Event::KeyRetired {
        key_id: key.key_id.clone(),
        sha256: sha256_hex(key.public_key.as_bytes()),
    }
}

/// A release image registered for `product`.
pub fn image(product: &str, image: &ReleaseImage) -> Event {
    Event::ImageRegistered {
        product: product.to_owned(),
        sha256: image.image_sha256.clone(),
        version: image.version.clone(),
        platform: image.platform.clone(),
    }
}
