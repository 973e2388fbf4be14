//! The advisory operations as the handlers and the shell call them: each runs one
//! step of the drafting and publishing rules on the services' database.

use chrono::Utc;
use serde_json::Value;

use crate::db::models::{AdvisoryRecord, RevisionRecord};
use crate::domain::advisory::{
    canonical_json, revision_document, AdvisoryInput, Completeness, RevisionMeta, RevisionStatus,
};
use crate::domain::log::Logged;
use crate::domain::{AdvisoryStatus, Caller};
use crate::services::log;

use super::KnownProducts;
use crate::services::{ServiceError, Services};

/// Creates a draft.
pub async fn create(
    services: &Services,
    caller: &Caller,
    input: AdvisoryInput,
) -> Result<AdvisoryRecord, ServiceError> {
    let record = services.db.run(move |conn| super::create_draft(conn, &input)).await?;
    tracing::info!(advisory.draft = %record.id, user.id = %caller.user, "created advisory draft");
    Ok(record)
}

/// Applies a JSON merge patch to a draft.
pub async fn edit(services: &Services, key: String, patch: Value) -> Result<AdvisoryRecord, ServiceError> {
    services.db.run(move |conn| super::edit_draft(conn, &key, &patch)).await
}

/// An advisory in any state, for vendor staff.
pub async fn draft(services: &Services, key: String) -> Result<AdvisoryRecord, ServiceError> {
    services.db.run(move |conn| super::find(conn, &key)).await
}

/// Replaces the whole body of a draft.
pub async fn replace(services: &Services, key: String, input: AdvisoryInput) -> Result<AdvisoryRecord, ServiceError> {
    services
        .db
        .run(move |conn| super::replace_draft(conn, &key, &input))
        .await
}

/// Every advisory, drafts included, for the vendor's list.
pub async fn all(services: &Services) -> Result<Vec<AdvisoryRecord>, ServiceError> {
    Ok(services.db.query(AdvisoryRecord::list_all).await?)
}

/// The advisory `key` as its next revision would read: the advisory, the id it is
/// shown under, and the revision document (unsigned).
pub async fn preview(services: &Services, key: String) -> Result<(AdvisoryRecord, String, Value), ServiceError> {
    let (record, input, catalogue) = services
        .db
        .run(move |conn| {
            let record = super::find(conn, &key)?;
            let input: AdvisoryInput = super::current_input(&record)?;
            Ok::<_, ServiceError>((record, input, KnownProducts::load(conn)?))
        })
        .await?;
    let advisory = catalogue.validate(&input, Completeness::Draft)?;
    let now = Utc::now();
    let meta = RevisionMeta {
        id: record
            .public_id
            .clone()
            .unwrap_or_else(|| "(assigned at publication)".into()),
        revision: record.latest_revision + 1,
        status: RevisionStatus::Published,
        first_published: record.first_published_at.map_or(now, |t| t.and_utc()),
        published: now,
        change_summary: if record.status == AdvisoryStatus::Draft {
            "Initial publication".into()
        } else {
            "(your change summary)".into()
        },
        history: Vec::new(),
        withdrawn_reason: None,
        key_id: services.signer.key_id().to_owned(),
    };
    let document: Value = serde_json::from_str(&canonical_json(&revision_document(&advisory, &meta)))
        .map_err(|e| ServiceError::internal("rendering a preview", e))?;
    Ok((record, meta.id, document))
}

/// A signing step: the first publication, a new revision, or the withdrawal.
pub enum SignAction {
    Publish {
        change_summary: String,
    },
    Revise {
        input: Box<AdvisoryInput>,
        change_summary: String,
    },
    Withdraw {
        reason: String,
    },
}

/// Runs `action` on the advisory `key`; returns the advisory as it now stands, the
/// revision that was signed, and its place in the transparency log.
pub async fn sign(
    services: &Services,
    caller: &Caller,
    key: String,
    action: SignAction,
) -> Result<(AdvisoryRecord, RevisionRecord, Logged), ServiceError> {
    let ctx = services.publish.clone();
    let actor = caller.actor();
    let (record, revision) = services
        .db
        .run(move |conn| {
            let revision = match &action {
                SignAction::Publish { change_summary } => super::publish(conn, &ctx, &actor, &key, change_summary)?,
                SignAction::Revise { input, change_summary } => {
                    super::revise(conn, &ctx, &actor, &key, input, change_summary)?
                }
                SignAction::Withdraw { reason } => super::withdraw(conn, &ctx, &actor, &key, reason)?,
            };
            let record = super::find(conn, revision.advisory_id.as_str())?;
            Ok::<_, ServiceError>((record, revision))
        })
        .await?;
    let event = log::records::revision(record.public_id.as_deref().unwrap_or_default(), &revision);
    let tree_head = services
        .reactions
        .after(services, std::slice::from_ref(&event))
        .await?
        .ok_or_else(|| ServiceError::internal("a signed revision", "no tree head covers it"))?;
    // The head covers every entry committed before it was signed.
    let index = log::index_of(services, &event).await?;
    let logged = Logged { index, tree_head };
    tracing::info!(
        advisory.id = record.public_id.as_deref().unwrap_or_default(),
        revision = revision.revision,
        user.id = %caller.user,
        "advisory revision signed"
    );
    Ok((record, revision, logged))
}
