//! What anyone may read of published advisories: pages of the list, one revision,
//! the revision history, and the advisories that affect a version.

use crate::db::models::{AdvisoryFilter, AdvisoryRecord, Product, RevisionRecord};
use crate::db::DbConnection;
use crate::domain::advisory::Completeness;
use crate::domain::{AdvisoryStatus, Reader};
use crate::services::{ServiceError, Services};

use super::{current_input, find, KnownProducts};

/// Parsed list filters and page, shared with the HTML index.
pub struct ListRequest {
    pub filter: AdvisoryFilter,
    pub page: u32,
    pub per_page: u32,
}

/// One page of published advisories for `request`.
pub async fn list_page(services: &Services, request: ListRequest) -> Result<(Vec<AdvisoryRecord>, i64), ServiceError> {
    let offset = i64::from(request.page - 1) * i64::from(request.per_page);
    let limit = i64::from(request.per_page);
    let filter = request.filter;
    services
        .db
        .query(move |conn| AdvisoryRecord::list_published(conn, &filter, offset, limit))
        .await
        .map_err(ServiceError::from)
}

/// Every published or withdrawn advisory with its latest revision, newest first:
/// what the feeds list.
pub async fn latest_revisions(services: &Services) -> Result<Vec<(AdvisoryRecord, RevisionRecord)>, ServiceError> {
    Ok(services.db.query(RevisionRecord::latest_of_all).await?)
}

/// A revision of a published advisory as its public page shows it: with every
/// revision of the advisory and the patches that fix it.
pub async fn page(
    services: &Services,
    reader: Reader,
    key: String,
    n: Option<i32>,
) -> Result<
    (
        AdvisoryRecord,
        RevisionRecord,
        Vec<RevisionRecord>,
        Vec<crate::db::models::PatchRecord>,
    ),
    ServiceError,
> {
    let (record, revision) = published_revision(services, reader, key, n).await?;
    let advisory_id = record.id.clone();
    let (history, fixing) = services
        .db
        .run(move |conn| {
            Ok::<_, ServiceError>((
                RevisionRecord::list(conn, &advisory_id)?,
                crate::db::models::PatchRecord::fixing(conn, &advisory_id)?,
            ))
        })
        .await?;
    Ok((record, revision, history, fixing))
}

/// A published advisory `reader` may read, with every revision, oldest first.
pub async fn revisions(
    services: &Services,
    reader: Reader,
    key: String,
) -> Result<(AdvisoryRecord, Vec<RevisionRecord>), ServiceError> {
    services
        .db
        .run(move |conn| {
            let record = readable(conn, &reader, &key)?;
            let revisions = RevisionRecord::list(conn, &record.id)?;
            Ok((record, revisions))
        })
        .await
}

/// The published advisory `key`, when `reader` may read it: to anyone else a
/// restricted advisory does not exist.
pub fn readable(conn: &mut DbConnection, reader: &Reader, key: &str) -> Result<AdvisoryRecord, ServiceError> {
    let record = find(conn, key)?;
    if record.status == AdvisoryStatus::Draft || !record.readable(conn, reader)? {
        return Err(ServiceError::NotFound("advisory"));
    }
    Ok(record)
}

/// A published advisory `reader` may read and one of its revisions (the latest when
/// `n` is `None`).
pub async fn published_revision(
    services: &Services,
    reader: Reader,
    key: String,
    n: Option<i32>,
) -> Result<(AdvisoryRecord, RevisionRecord), ServiceError> {
    services
        .db
        .run(move |conn| {
            let record = readable(conn, &reader, &key)?;
            let revision = RevisionRecord::find(conn, &record.id, n.unwrap_or(record.latest_revision))?
                .ok_or(ServiceError::NotFound("revision"))?;
            Ok((record, revision))
        })
        .await
}

/// What a published advisory says about one version: the advisory, its CVEs, and
/// where the fix is.
pub type Affecting = (AdvisoryRecord, Vec<String>, crate::domain::advisory::Finding);

/// The published advisories `reader` may read that affect `version` of `product`; with the product's
/// slug and the version as parsed.
pub async fn affecting(
    services: &Services,
    reader: Reader,
    product: String,
    version: String,
) -> Result<(String, String, Vec<Affecting>), ServiceError> {
    services
        .db
        .run(move |conn| {
            let product = Product::find_by_slug(conn, &product)?
                .ok_or_else(|| ServiceError::invalid("product", format!("there is no product `{product}`")))?;
            let version = product
                .scheme()
                .parse(version.trim())
                .map_err(|e| ServiceError::invalid("version", format!("not a {} version: {e}", product.scheme())))?;
            let catalogue = KnownProducts::load(conn)?;
            let mut found = Vec::new();
            for record in AdvisoryRecord::published_for_product(conn, &product.id, &reader)? {
                if record.status != AdvisoryStatus::Published {
                    continue;
                }
                let advisory = catalogue.validate(&current_input(&record)?, Completeness::Publish)?;
                if let Some(finding) = advisory.finding(&product.slug, &version) {
                    found.push((record, advisory.cves.clone(), finding));
                }
            }
            Ok((product.slug, version.to_string(), found))
        })
        .await
}
