//! Advisories and their revisions. The `advisories` row holds the editable draft and,
//! once published, the searchable summary of the latest revision; every published
//! revision is an immutable `advisory_revisions` row with its signed document.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{
    advisories, advisory_counters, advisory_cves, advisory_products, advisory_readers, advisory_revisions, customers,
    products,
};
use crate::db::{DbBackend, DbConnection};
use crate::domain::state::{AdvisoryStatus, RevisionStatus, Tlp};
use crate::domain::Reader;
use crate::ids::CustomerId;
use crate::ids::{AdvisoryId, ProductId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = advisories)]
pub struct AdvisoryRecord {
    pub id: AdvisoryId,
    pub public_id: Option<String>,
    #[diesel(deserialize_as = String)]
    pub status: AdvisoryStatus,
    pub draft: String,
    pub title: String,
    pub severity: Option<String>,
    pub score_tenths: Option<i32>,
    pub emergency: bool,
    pub known_exploited: bool,
    pub fix_deadline: Option<NaiveDateTime>,
    pub latest_revision: i32,
    pub first_published_at: Option<NaiveDateTime>,
    pub last_published_at: Option<NaiveDateTime>,
    pub search_text: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    #[diesel(deserialize_as = String)]
    pub tlp: Tlp,
}

#[derive(Insertable)]
#[diesel(table_name = advisories)]
pub struct NewAdvisory<'a> {
    pub id: &'a AdvisoryId,
    pub status: &'a str,
    pub draft: &'a str,
    pub title: &'a str,
    pub emergency: bool,
    pub known_exploited: bool,
    pub latest_revision: i32,
    pub search_text: &'a str,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// The searchable summary of a newly published revision.
#[derive(AsChangeset)]
#[diesel(table_name = advisories, treat_none_as_null = true)]
pub struct PublishedSummary<'a> {
    pub public_id: Option<&'a str>,
    pub status: &'a str,
    pub draft: &'a str,
    pub title: &'a str,
    pub severity: Option<&'a str>,
    pub score_tenths: Option<i32>,
    pub emergency: bool,
    pub known_exploited: bool,
    pub fix_deadline: Option<NaiveDateTime>,
    pub first_published_at: Option<NaiveDateTime>,
    pub last_published_at: Option<NaiveDateTime>,
    pub search_text: &'a str,
    pub updated_at: NaiveDateTime,
    pub tlp: &'a str,
}

#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = advisory_revisions)]
pub struct RevisionRecord {
    pub advisory_id: AdvisoryId,
    pub revision: i32,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub status: RevisionStatus,
    pub published_at: NaiveDateTime,
    pub change_summary: String,
    pub document: String,
    pub signature: String,
    pub key_id: String,
    pub csaf: String,
    /// The OpenPGP detached signature (armored) of `csaf`.
    pub csaf_signature: Option<String>,
}

/// The advisories `reader` may read: TLP:WHITE ones, and for a customer those that
/// name it; the vendor reads all.
fn readable_by(
    reader: &Reader,
) -> Box<dyn BoxableExpression<advisories::table, DbBackend, SqlType = diesel::sql_types::Bool>> {
    let public = advisories::tlp.eq(Tlp::White.as_str());
    match reader {
        Reader::Vendor => Box::new(advisories::tlp.eq(advisories::tlp)),
        Reader::Anyone => Box::new(public),
        Reader::Customer(customer) => {
            let named = advisory_readers::table
                .filter(advisory_readers::customer_id.eq(customer.clone()))
                .select(advisory_readers::advisory_id);
            Box::new(public.or(advisories::id.eq_any(named)))
        }
    }
}

/// Filters of the public advisory list.
#[derive(Clone, Debug)]
pub struct AdvisoryFilter {
    /// Who lists: restricted advisories appear only to those they are for.
    pub reader: Reader,
    pub product: Option<String>,
    pub severity: Option<String>,
    pub cve: Option<String>,
    pub text: Option<String>,
    pub emergency: Option<bool>,
}

fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

fn published(filter: &AdvisoryFilter) -> advisories::BoxedQuery<'static, DbBackend> {
    let mut query = advisories::table
        .filter(advisories::status.ne(AdvisoryStatus::Draft.as_str()))
        .filter(readable_by(&filter.reader))
        .into_boxed();
    if let Some(slug) = &filter.product {
        let ids = advisory_products::table
            .inner_join(products::table)
            .filter(products::slug.eq(slug.clone()))
            .select(advisory_products::advisory_id);
        query = query.filter(advisories::id.eq_any(ids));
    }
    if let Some(cve) = &filter.cve {
        let ids = advisory_cves::table
            .filter(advisory_cves::cve.eq(cve.clone()))
            .select(advisory_cves::advisory_id);
        query = query.filter(advisories::id.eq_any(ids));
    }
    if let Some(severity) = &filter.severity {
        query = query.filter(advisories::severity.eq(severity.clone()));
    }
    if let Some(emergency) = filter.emergency {
        query = query.filter(advisories::emergency.eq(emergency));
    }
    if let Some(text) = &filter.text {
        query = query.filter(
            advisories::search_text
                .like(escape_like(&text.to_lowercase()))
                .escape('\\'),
        );
    }
    query
}

impl AdvisoryRecord {
    pub fn insert(conn: &mut DbConnection, new: &NewAdvisory<'_>) -> QueryResult<AdvisoryRecord> {
        diesel::insert_into(advisories::table).values(new).execute(conn)?;
        advisories::table
            .find(new.id)
            .select(AdvisoryRecord::as_select())
            .first(conn)
    }

    /// By internal id (a UUID) or by public id (`PW-2026-0001`, any case).
    pub fn find(conn: &mut DbConnection, key: &str) -> QueryResult<Option<AdvisoryRecord>> {
        match key.parse::<AdvisoryId>() {
            Ok(id) => advisories::table
                .find(id)
                .select(AdvisoryRecord::as_select())
                .first(conn)
                .optional(),
            Err(_) => advisories::table
                .filter(advisories::public_id.eq(key.to_uppercase()))
                .select(AdvisoryRecord::as_select())
                .first(conn)
                .optional(),
        }
    }

    /// Replaces the draft body and title of a draft.
    pub fn update_draft(
        conn: &mut DbConnection,
        id: &AdvisoryId,
        draft: &str,
        title: &str,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            advisories::table
                .find(id)
                .filter(advisories::status.eq(AdvisoryStatus::Draft.as_str())),
        )
        .set((
            advisories::draft.eq(draft),
            advisories::title.eq(title),
            advisories::updated_at.eq(at),
        ))
        .execute(conn)
    }

    /// Claims revision `next` of the advisory, if `next - 1` is still the latest:
    /// the optimistic lock that keeps two publishers from both writing revision N.
    pub fn claim_revision(conn: &mut DbConnection, id: &AdvisoryId, next: i32) -> QueryResult<bool> {
        let claimed = diesel::update(
            advisories::table
                .find(id)
                .filter(advisories::latest_revision.eq(next - 1)),
        )
        .set(advisories::latest_revision.eq(next))
        .execute(conn)?;
        Ok(claimed == 1)
    }

    pub fn set_published(
        conn: &mut DbConnection,
        id: &AdvisoryId,
        summary: &PublishedSummary<'_>,
    ) -> QueryResult<usize> {
        diesel::update(advisories::table.find(id)).set(summary).execute(conn)
    }

    /// Replaces the CVE and product index rows of an advisory.
    pub fn set_index(
        conn: &mut DbConnection,
        id: &AdvisoryId,
        cves: &[String],
        product_ids: &[ProductId],
    ) -> QueryResult<()> {
        diesel::delete(advisory_cves::table.filter(advisory_cves::advisory_id.eq(id))).execute(conn)?;
        diesel::delete(advisory_products::table.filter(advisory_products::advisory_id.eq(id))).execute(conn)?;
        for cve in cves {
            diesel::insert_into(advisory_cves::table)
                .values((advisory_cves::advisory_id.eq(id), advisory_cves::cve.eq(cve)))
                .execute(conn)?;
        }
        for product in product_ids {
            diesel::insert_into(advisory_products::table)
                .values((
                    advisory_products::advisory_id.eq(id),
                    advisory_products::product_id.eq(product),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    /// One page of published (and withdrawn) advisories, newest first, and the total.
    pub fn list_published(
        conn: &mut DbConnection,
        filter: &AdvisoryFilter,
        offset: i64,
        limit: i64,
    ) -> QueryResult<(Vec<AdvisoryRecord>, i64)> {
        let total = published(filter).count().get_result(conn)?;
        let rows = published(filter)
            .order((advisories::last_published_at.desc(), advisories::public_id.desc()))
            .offset(offset)
            .limit(limit)
            .select(AdvisoryRecord::as_select())
            .load(conn)?;
        Ok((rows, total))
    }

    /// The customers a restricted advisory is for.
    pub fn readers(conn: &mut DbConnection, id: &AdvisoryId) -> QueryResult<Vec<CustomerId>> {
        advisory_readers::table
            .filter(advisory_readers::advisory_id.eq(id))
            .select(advisory_readers::customer_id)
            .load(conn)
    }

    /// The customers a restricted advisory is for, with their slugs.
    pub fn readers_named(conn: &mut DbConnection, id: &AdvisoryId) -> QueryResult<Vec<(CustomerId, String)>> {
        advisory_readers::table
            .inner_join(customers::table)
            .filter(advisory_readers::advisory_id.eq(id))
            .select((advisory_readers::customer_id, customers::slug))
            .load(conn)
    }

    /// Replaces the customers a restricted advisory is for.
    pub fn set_readers(conn: &mut DbConnection, id: &AdvisoryId, customers: &[CustomerId]) -> QueryResult<()> {
        diesel::delete(advisory_readers::table.filter(advisory_readers::advisory_id.eq(id))).execute(conn)?;
        for customer in customers {
            diesel::insert_into(advisory_readers::table)
                .values((
                    advisory_readers::advisory_id.eq(id),
                    advisory_readers::customer_id.eq(customer),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Whether `reader` may read this advisory.
    pub fn readable(&self, conn: &mut DbConnection, reader: &Reader) -> QueryResult<bool> {
        if !self.tlp.restricted() || *reader == Reader::Vendor {
            return Ok(true);
        }
        Ok(reader.may_read(self.tlp, &Self::readers(conn, &self.id)?))
    }

    /// Every advisory, drafts included, most recently changed first (vendor screens).
    pub fn list_all(conn: &mut DbConnection) -> QueryResult<Vec<AdvisoryRecord>> {
        advisories::table
            .order(advisories::updated_at.desc())
            .select(AdvisoryRecord::as_select())
            .load(conn)
    }

    /// Published advisories that name `product` and that `reader` may read.
    pub fn published_for_product(
        conn: &mut DbConnection,
        product: &ProductId,
        reader: &Reader,
    ) -> QueryResult<Vec<AdvisoryRecord>> {
        let ids = advisory_products::table
            .filter(advisory_products::product_id.eq(product))
            .select(advisory_products::advisory_id);
        advisories::table
            .filter(advisories::status.ne(AdvisoryStatus::Draft.as_str()))
            .filter(advisories::id.eq_any(ids))
            .filter(readable_by(reader))
            .select(AdvisoryRecord::as_select())
            .load(conn)
    }
}

impl RevisionRecord {
    pub fn insert(conn: &mut DbConnection, record: &RevisionRecord) -> QueryResult<()> {
        diesel::insert_into(advisory_revisions::table)
            .values(record.clone())
            .execute(conn)
            .map(drop)
    }

    pub fn find(conn: &mut DbConnection, advisory: &AdvisoryId, revision: i32) -> QueryResult<Option<RevisionRecord>> {
        advisory_revisions::table
            .find((advisory, revision))
            .select(RevisionRecord::as_select())
            .first(conn)
            .optional()
    }

    /// Revisions whose CSAF document has no OpenPGP signature yet.
    pub fn without_csaf_signature(conn: &mut DbConnection) -> QueryResult<Vec<RevisionRecord>> {
        advisory_revisions::table
            .filter(advisory_revisions::csaf_signature.is_null())
            .select(RevisionRecord::as_select())
            .load(conn)
    }

    pub fn set_csaf_signature(
        conn: &mut DbConnection,
        advisory: &AdvisoryId,
        revision: i32,
        signature: &str,
    ) -> QueryResult<()> {
        diesel::update(advisory_revisions::table.find((advisory, revision)))
            .set(advisory_revisions::csaf_signature.eq(signature))
            .execute(conn)
            .map(drop)
    }

    /// Every revision of an advisory, oldest first.
    pub fn list(conn: &mut DbConnection, advisory: &AdvisoryId) -> QueryResult<Vec<RevisionRecord>> {
        advisory_revisions::table
            .filter(advisory_revisions::advisory_id.eq(advisory))
            .order(advisory_revisions::revision)
            .select(RevisionRecord::as_select())
            .load(conn)
    }

    /// The latest revision of every published TLP:WHITE advisory, newest first, for
    /// the public feeds.
    pub fn latest_of_all(conn: &mut DbConnection) -> QueryResult<Vec<(AdvisoryRecord, RevisionRecord)>> {
        advisories::table
            .inner_join(
                advisory_revisions::table.on(advisory_revisions::advisory_id
                    .eq(advisories::id)
                    .and(advisory_revisions::revision.eq(advisories::latest_revision))),
            )
            .filter(advisories::status.ne(AdvisoryStatus::Draft.as_str()))
            .filter(advisories::tlp.eq(Tlp::White.as_str()))
            .order((advisories::last_published_at.desc(), advisories::public_id.desc()))
            .select((AdvisoryRecord::as_select(), RevisionRecord::as_select()))
            .load(conn)
    }
}

/// What the CSAF distribution lists of one published or withdrawn advisory.
#[derive(Clone, Debug, Queryable)]
pub struct DistributedAdvisory {
    pub id: AdvisoryId,
    pub public_id: Option<String>,
    pub title: String,
    pub first_published_at: Option<NaiveDateTime>,
    pub last_published_at: Option<NaiveDateTime>,
}

/// The name of a product an advisory concerns.
pub type ProductOf = (AdvisoryId, String);

/// Every published or withdrawn advisory of `tlp` that `reader` may read, as the CSAF
/// distribution lists it, with the names of the products each concerns: without the
/// documents themselves.
pub fn distribution(
    conn: &mut DbConnection,
    tlp: Tlp,
    reader: &Reader,
) -> QueryResult<(Vec<DistributedAdvisory>, Vec<ProductOf>)> {
    let listed = advisories::table
        .filter(advisories::status.ne(AdvisoryStatus::Draft.as_str()))
        .filter(advisories::tlp.eq(tlp.as_str()))
        .filter(readable_by(reader))
        .select((
            advisories::id,
            advisories::public_id,
            advisories::title,
            advisories::first_published_at,
            advisories::last_published_at,
        ))
        .load::<DistributedAdvisory>(conn)?;
    let products = advisory_products::table
        .inner_join(products::table)
        .inner_join(advisories::table)
        .filter(advisories::status.ne(AdvisoryStatus::Draft.as_str()))
        .select((advisory_products::advisory_id, products::name))
        .load(conn)?;
    Ok((listed, products))
}

/// Allocates the next advisory number of `year`. It must be the first statement of
/// the publishing transaction: it takes the write lock, so concurrent publishers
/// queue here, and a rolled-back publish gives its number back.
pub fn next_advisory_number(conn: &mut DbConnection, year: i32) -> QueryResult<i32> {
    crate::db::ensure_counter_row(conn, year)?;
    diesel::update(advisory_counters::table.find(year))
        .set(advisory_counters::last_number.eq(advisory_counters::last_number + 1))
        .execute(conn)?;
    advisory_counters::table
        .find(year)
        .select(advisory_counters::last_number)
        .first(conn)
}
