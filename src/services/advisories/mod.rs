//! Publishing advisories: drafts, the first publication (which allocates the public
//! id), revisions and withdrawal. Each published revision is written once, in one
//! transaction, with its canonical document, its minisign signature and its CSAF
//! rendering; nothing here edits a published revision. `actions` holds the entry
//! points that run these on the services' database, `reads` what the public reads.

mod actions;
mod reads;

pub use actions::{all, create, draft, edit, preview, replace, sign, SignAction};
pub use reads::{
    affecting, latest_revisions, list_page, page, published_revision, readable, revisions, Affecting, ListRequest,
};

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Datelike, NaiveDateTime, Utc};
use serde_json::Value;

use crate::config::Config;
use crate::db::models::advisory::next_advisory_number;
use crate::db::models::{
    now, AdvisoryRecord, Customer, Generations, NewAdvisory, Product, PublishedSummary, RevisionRecord,
};
use crate::db::DbConnection;
use crate::domain::advisory::{
    canonical_json, input_of, revision_document, Advisory, AdvisoryInput, Completeness, ProductInfo, RevisionEntry,
    RevisionMeta, RevisionStatus,
};
use crate::domain::event::Actor;
use crate::domain::openpgp::OpenPgpKey;
use crate::domain::AdvisoryStatus;
use crate::domain::{csaf, text};
use crate::ids::{AdvisoryId, CustomerId, ProductId};
use crate::secrets::sha256_hex;
use crate::services::error::ServiceError;
use crate::services::log;
use crate::services::Reactions;
use crate::signing::Signer;

/// The products the vendor ships, by slug: what an advisory may name. (The offers
/// devices get are the fleet's `OfferCatalogue`.)
pub struct KnownProducts {
    products: HashMap<String, Product>,
}

impl KnownProducts {
    pub fn load(conn: &mut DbConnection) -> Result<Self, ServiceError> {
        let products = Product::list(conn)?.into_iter().map(|p| (p.slug.clone(), p)).collect();
        Ok(KnownProducts { products })
    }

    pub fn info(&self, slug: &str) -> Option<ProductInfo> {
        self.products.get(slug).map(Product::info)
    }

    pub fn get(&self, slug: &str) -> Option<&Product> {
        self.products.get(slug)
    }

    pub fn validate(&self, input: &AdvisoryInput, completeness: Completeness) -> Result<Advisory, ServiceError> {
        Ok(input.validate(|slug| self.info(slug), completeness)?)
    }

    fn product_ids(&self, advisory: &Advisory) -> Vec<ProductId> {
        advisory
            .affected
            .iter()
            .filter_map(|a| self.products.get(&a.product.slug).map(|p| p.id.clone()))
            .collect()
    }
}

/// What signing and rendering a revision needs.
#[derive(Clone)]
pub struct PublishContext {
    pub signer: Arc<Signer>,
    /// Signs each revision's CSAF document (its `.asc`).
    pub openpgp: Arc<OpenPgpKey>,
    pub id_prefix: String,
    pub publisher: csaf::Publisher,
    pub public_url: String,
    /// What follows a revision: it is announced inside its transaction.
    pub reactions: Arc<dyn Reactions>,
}

impl PublishContext {
    pub fn new(config: &Config, signer: Arc<Signer>, openpgp: Arc<OpenPgpKey>, reactions: Arc<dyn Reactions>) -> Self {
        PublishContext {
            signer,
            openpgp,
            id_prefix: config.advisory_id_prefix.clone(),
            publisher: csaf::Publisher {
                name: config.vendor_name.clone(),
                namespace: config.public_url.to_string(),
            },
            public_url: config.url(""),
            reactions,
        }
    }
}

fn stored_input(record: &AdvisoryRecord) -> Result<AdvisoryInput, ServiceError> {
    serde_json::from_str(&record.draft)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("stored draft of {} is not valid: {e}", record.id)))
}

fn to_json(input: &AdvisoryInput) -> Result<String, ServiceError> {
    serde_json::to_string(input).map_err(|e| ServiceError::Internal(e.into()))
}

/// Finds an advisory by internal or public id.
pub fn find(conn: &mut DbConnection, key: &str) -> Result<AdvisoryRecord, ServiceError> {
    AdvisoryRecord::find(conn, key)?.ok_or(ServiceError::NotFound("advisory"))
}

/// The published advisory `key`; a conflict with the message for its state otherwise.
fn find_published(
    conn: &mut DbConnection,
    key: &str,
    if_draft: &str,
    if_withdrawn: &str,
) -> Result<AdvisoryRecord, ServiceError> {
    let record = find(conn, key)?;
    match record.status {
        AdvisoryStatus::Published => Ok(record),
        AdvisoryStatus::Draft => Err(ServiceError::Conflict(if_draft.into())),
        _ => Err(ServiceError::Conflict(if_withdrawn.into())),
    }
}

/// Creates a draft from a (possibly partial) body.
pub fn create_draft(conn: &mut DbConnection, input: &AdvisoryInput) -> Result<AdvisoryRecord, ServiceError> {
    let catalogue = KnownProducts::load(conn)?;
    let advisory = catalogue.validate(input, Completeness::Draft)?;
    reader_ids(conn, &advisory)?;
    let at = now();
    let id = AdvisoryId::generate();
    let draft = to_json(input)?;
    let record = AdvisoryRecord::insert(
        conn,
        &NewAdvisory {
            id: &id,
            status: AdvisoryStatus::Draft.as_str(),
            draft: &draft,
            title: &advisory.title,
            emergency: advisory.emergency,
            known_exploited: advisory.known_exploited,
            latest_revision: 0,
            search_text: &advisory.search_text(),
            created_at: at,
            updated_at: at,
        },
    )?;
    Ok(record)
}

/// Applies a JSON merge patch to a draft.
pub fn edit_draft(conn: &mut DbConnection, key: &str, patch: &Value) -> Result<AdvisoryRecord, ServiceError> {
    let record = draft_record(conn, key)?;
    let input = stored_input(&record)?.merge_patch(patch)?;
    store_draft(conn, &record, &input)
}

/// Replaces the whole body of a draft.
pub fn replace_draft(
    conn: &mut DbConnection,
    key: &str,
    input: &AdvisoryInput,
) -> Result<AdvisoryRecord, ServiceError> {
    let record = draft_record(conn, key)?;
    store_draft(conn, &record, input)
}

fn draft_record(conn: &mut DbConnection, key: &str) -> Result<AdvisoryRecord, ServiceError> {
    let record = find(conn, key)?;
    if record.status != AdvisoryStatus::Draft {
        return Err(ServiceError::Conflict(
            "a published advisory is immutable; send a new revision to POST /api/v1/advisories/{id}/revisions".into(),
        ));
    }
    Ok(record)
}

fn store_draft(
    conn: &mut DbConnection,
    record: &AdvisoryRecord,
    input: &AdvisoryInput,
) -> Result<AdvisoryRecord, ServiceError> {
    let advisory = KnownProducts::load(conn)?.validate(input, Completeness::Draft)?;
    reader_ids(conn, &advisory)?;
    let changed = AdvisoryRecord::update_draft(conn, &record.id, &to_json(input)?, &advisory.title, now())?;
    if changed == 0 {
        return Err(ServiceError::Conflict("the advisory was published meanwhile".into()));
    }
    find(conn, record.id.as_str())
}

/// The customers a restricted advisory is for, by id; a slug no customer has is
/// refused, naming the entry.
fn reader_ids(conn: &mut DbConnection, advisory: &Advisory) -> Result<Vec<CustomerId>, ServiceError> {
    advisory
        .readers
        .iter()
        .enumerate()
        .map(|(i, slug)| {
            Customer::find_by_slug(conn, slug)?.map(|c| c.id).ok_or_else(|| {
                ServiceError::invalid(format!("customers[{i}]"), format!("there is no customer `{slug}`"))
            })
        })
        .collect()
}

/// The current body of an advisory: its draft, or its latest published revision.
pub fn current_input(record: &AdvisoryRecord) -> Result<AdvisoryInput, ServiceError> {
    stored_input(record)
}

/// Publishes a draft as revision 1, allocating its public id.
pub fn publish(
    conn: &mut DbConnection,
    ctx: &PublishContext,
    actor: &Actor,
    key: &str,
    change_summary: &str,
) -> Result<RevisionRecord, ServiceError> {
    let record = find(conn, key)?;
    if record.status != AdvisoryStatus::Draft {
        return Err(ServiceError::Conflict(format!(
            "{} is already published; send a new revision instead",
            record.public_id.as_deref().unwrap_or("the advisory")
        )));
    }
    let summary = text::SUMMARY.check("change_summary", change_summary, false)?;
    let summary = if summary.is_empty() {
        "Initial publication".to_owned()
    } else {
        summary
    };
    let input = stored_input(&record)?;
    let catalogue = KnownProducts::load(conn)?;
    let advisory = catalogue.validate(&input, Completeness::Publish)?;
    write_revision(
        conn,
        ctx,
        actor,
        &catalogue,
        &record,
        &advisory,
        RevisionStatus::Published,
        &summary,
        None,
    )
}

/// Publishes a new revision of a published advisory with a complete new body.
pub fn revise(
    conn: &mut DbConnection,
    ctx: &PublishContext,
    actor: &Actor,
    key: &str,
    input: &AdvisoryInput,
    change_summary: &str,
) -> Result<RevisionRecord, ServiceError> {
    let record = find_published(
        conn,
        key,
        "a draft has no revisions yet; publish it first",
        "a withdrawn advisory cannot be revised",
    )?;
    let summary = text::SUMMARY.check("change_summary", change_summary, true)?;
    let catalogue = KnownProducts::load(conn)?;
    let advisory = catalogue.validate(input, Completeness::Publish)?;
    write_revision(
        conn,
        ctx,
        actor,
        &catalogue,
        &record,
        &advisory,
        RevisionStatus::Published,
        &summary,
        None,
    )
}

/// Withdraws a published advisory: a last revision that says so, with the reason.
pub fn withdraw(
    conn: &mut DbConnection,
    ctx: &PublishContext,
    actor: &Actor,
    key: &str,
    reason: &str,
) -> Result<RevisionRecord, ServiceError> {
    let record = find_published(
        conn,
        key,
        "a draft is not published; there is nothing to withdraw",
        "the advisory is already withdrawn",
    )?;
    let reason = text::REASON.check("reason", reason, true)?;
    let catalogue = KnownProducts::load(conn)?;
    let advisory = catalogue.validate(&stored_input(&record)?, Completeness::Publish)?;
    let summary = format!("Withdrawn: {reason}");
    write_revision(
        conn,
        ctx,
        actor,
        &catalogue,
        &record,
        &advisory,
        RevisionStatus::Withdrawn,
        &summary,
        Some(reason),
    )
}

/// A signature time in OpenPGP's seconds since 1970.
fn openpgp_time(at: NaiveDateTime) -> u32 {
    u32::try_from(at.and_utc().timestamp()).unwrap_or(u32::MAX)
}

/// Signs, with the OpenPGP key, the CSAF documents of revisions written before
/// documents were signed that way; returns how many.
pub fn sign_unsigned_csaf(conn: &mut DbConnection, key: &OpenPgpKey) -> Result<usize, ServiceError> {
    let unsigned = RevisionRecord::without_csaf_signature(conn)?;
    for revision in &unsigned {
        let signature = key.sign_detached(revision.csaf.as_bytes(), openpgp_time(now()));
        RevisionRecord::set_csaf_signature(conn, &revision.advisory_id, revision.revision, &signature)?;
    }
    Ok(unsigned.len())
}

fn to_utc(at: NaiveDateTime) -> chrono::DateTime<Utc> {
    at.and_utc()
}

#[expect(
    clippy::too_many_arguments,
    reason = "one transaction needs every part of the revision"
)]
fn write_revision(
    conn: &mut DbConnection,
    ctx: &PublishContext,
    actor: &Actor,
    catalogue: &KnownProducts,
    record: &AdvisoryRecord,
    advisory: &Advisory,
    revision_status: RevisionStatus,
    change_summary: &str,
    withdrawn_reason: Option<String>,
) -> Result<RevisionRecord, ServiceError> {
    let next = record.latest_revision + 1;
    let readers = reader_ids(conn, advisory)?;
    conn.write_transaction(|conn| {
        let at = now();
        // The first statement writes, so SQLite takes its write lock here.
        let public_id = match &record.public_id {
            Some(id) => id.clone(),
            None => {
                let year = Utc::now().year();
                let number = next_advisory_number(conn, year)?;
                format!("{}-{year}-{number:04}", ctx.id_prefix)
            }
        };
        if !AdvisoryRecord::claim_revision(conn, &record.id, next)? {
            return Err(ServiceError::Conflict("the advisory changed meanwhile; reload it and try again".into()));
        }
        let history: Vec<RevisionEntry> = RevisionRecord::list(conn, &record.id)?
            .into_iter()
            .map(|r| RevisionEntry {
                revision: r.revision,
                date: crate::domain::advisory::rfc3339(to_utc(r.published_at)),
                summary: r.change_summary,
            })
            .collect();
        let first_published = record.first_published_at.unwrap_or(at);
        let meta = RevisionMeta {
            id: public_id.clone(),
            revision: next,
            status: revision_status,
            first_published: to_utc(first_published),
            published: to_utc(at),
            change_summary: change_summary.to_owned(),
            history,
            withdrawn_reason,
            key_id: ctx.signer.key_id().to_owned(),
        };
        let document = canonical_json(&revision_document(advisory, &meta));
        let trusted_comment = format!(
            "patchwarden advisory {public_id} revision {next} {} sha256:{}",
            revision_status.as_str(),
            sha256_hex(document.as_bytes())
        );
        let signature = ctx.signer.sign(document.as_bytes(), &trusted_comment).map_err(ServiceError::Internal)?;
        let self_url = format!(
            "{}/{}/{}",
            ctx.public_url,
            csaf::directory(advisory.tlp),
            csaf::document_path(&public_id, to_utc(first_published).year())
        );
        let csaf_doc = canonical_json(&csaf::document(advisory, &meta, &ctx.publisher, &self_url));
        let csaf_signature = ctx.openpgp.sign_detached(csaf_doc.as_bytes(), openpgp_time(at));
        let revision = RevisionRecord {
            advisory_id: record.id.clone(),
            revision: next,
            status: revision_status,
            published_at: at,
            change_summary: change_summary.to_owned(),
            document,
            signature,
            key_id: ctx.signer.key_id().to_owned(),
            csaf: csaf_doc,
            csaf_signature: Some(csaf_signature),
        };
        RevisionRecord::insert(conn, &revision)?;
        let draft = to_json(&input_of(advisory))?;
        let severity = advisory.severity().map(|s| s.as_str());
        AdvisoryRecord::set_published(
            conn,
            &record.id,
            &PublishedSummary {
                public_id: Some(&public_id),
                status: AdvisoryStatus::from(revision_status).as_str(),
                draft: &draft,
                title: &advisory.title,
                severity,
                score_tenths: advisory.headline().map(|s| (s.score * 10.0).round() as i32),
                emergency: advisory.emergency,
                known_exploited: advisory.known_exploited,
                fix_deadline: advisory.fix_deadline.map(|d| d.naive_utc()),
                first_published_at: Some(first_published),
                last_published_at: Some(at),
                search_text: &advisory.search_text(),
                updated_at: at,
                tlp: advisory.tlp.as_str(),
            },
        )?;
        AdvisoryRecord::set_index(conn, &record.id, &advisory.cves, &catalogue.product_ids(advisory))?;
        AdvisoryRecord::set_readers(conn, &record.id, &readers)?;
        Generations::catalogue_changed(conn)?;
        let event = log::records::revision(&public_id, &revision);
        ctx.reactions.within(conn, std::slice::from_ref(&event))?;
        // The entry commits with the revision; the sequencer gives it its index.
        log::append(conn, &event, actor)?;
        tracing::info!(advisory.id = %public_id, revision = next, status = revision_status.as_str(), "published advisory revision");
        Ok(revision)
    })
}
