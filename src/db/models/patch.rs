//! Patches: one file for one product (and optional platform) that installs one
//! target version, with the advisories it fixes; and the entitlements that decide
//! which customers may download a product's patches.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{advisories, entitlements, patch_advisories, patches, products};
use crate::db::DbConnection;
use crate::domain::{AdvisoryStatus, PatchState};
use crate::ids::{AdvisoryId, CustomerId, PatchId, ProductId};

use super::Product;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = patches)]
pub struct PatchRecord {
    pub id: PatchId,
    pub product_id: ProductId,
    pub version: String,
    pub platform: Option<String>,
    /// JSON array of ranges.
    pub applies_to: String,
    pub filename: String,
    pub expected_sha256: Option<String>,
    pub sha256: Option<String>,
    pub size: Option<i64>,
    #[diesel(deserialize_as = String)]
    pub state: PatchState,
    pub signature: Option<String>,
    pub key_id: Option<String>,
    pub yank_reason: Option<String>,
    pub created_at: NaiveDateTime,
    pub uploaded_at: Option<NaiveDateTime>,
    pub published_at: Option<NaiveDateTime>,
    pub yanked_at: Option<NaiveDateTime>,
    pub rollback: bool,
}

#[derive(Insertable)]
#[diesel(table_name = patches)]
pub struct NewPatch<'a> {
    pub id: &'a PatchId,
    pub product_id: &'a ProductId,
    pub version: &'a str,
    pub platform: Option<&'a str>,
    pub applies_to: &'a str,
    pub filename: &'a str,
    pub expected_sha256: Option<&'a str>,
    pub state: &'a str,
    pub created_at: NaiveDateTime,
    pub rollback: bool,
}

/// A patch with its product and the public ids of the advisories it fixes.
#[derive(Clone, Debug)]
pub struct PatchView {
    pub patch: PatchRecord,
    pub product: Product,
    pub fixes: Vec<String>,
}

impl PatchRecord {
    pub fn insert(conn: &mut DbConnection, new: &NewPatch<'_>, fixes: &[AdvisoryId]) -> QueryResult<()> {
        conn.write_transaction(|conn| {
            diesel::insert_into(patches::table).values(new).execute(conn)?;
            for advisory in fixes {
                diesel::insert_into(patch_advisories::table)
                    .values((
                        patch_advisories::patch_id.eq(new.id),
                        patch_advisories::advisory_id.eq(advisory),
                    ))
                    .execute(conn)?;
            }
            Ok(())
        })
    }

    pub fn find(conn: &mut DbConnection, id: &PatchId) -> QueryResult<Option<PatchRecord>> {
        patches::table
            .find(id)
            .select(PatchRecord::as_select())
            .first(conn)
            .optional()
    }

    /// Records the stored file of a draft; 0 when the patch is no longer a draft.
    pub fn set_file(
        conn: &mut DbConnection,
        id: &PatchId,
        sha256: &str,
        size: i64,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            patches::table
                .find(id)
                .filter(patches::state.eq(PatchState::Draft.as_str())),
        )
        .set((
            patches::sha256.eq(sha256),
            patches::size.eq(size),
            patches::uploaded_at.eq(at),
        ))
        .execute(conn)
    }

    /// Publishes a draft with its signature; 0 when it is no longer a draft or its
    /// file changed since it was signed.
    pub fn set_published(
        conn: &mut DbConnection,
        id: &PatchId,
        sha256: &str,
        signature: &str,
        key_id: &str,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            patches::table
                .find(id)
                .filter(patches::state.eq(PatchState::Draft.as_str()))
                .filter(patches::sha256.eq(sha256)),
        )
        .set((
            patches::state.eq(PatchState::Published.as_str()),
            patches::signature.eq(signature),
            patches::key_id.eq(key_id),
            patches::published_at.eq(at),
        ))
        .execute(conn)
    }

    /// Yanks a published patch; 0 when it is not published.
    pub fn set_yanked(conn: &mut DbConnection, id: &PatchId, reason: &str, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            patches::table
                .find(id)
                .filter(patches::state.eq(PatchState::Published.as_str())),
        )
        .set((
            patches::state.eq(PatchState::Yanked.as_str()),
            patches::yank_reason.eq(reason),
            patches::yanked_at.eq(at),
        ))
        .execute(conn)
    }

    /// The public ids of the advisories a patch fixes (drafts by their internal id).
    /// Whether the patch `id` fixes a published emergency advisory.
    pub fn fixes_emergency(conn: &mut DbConnection, id: &PatchId) -> QueryResult<bool> {
        let count: i64 = patch_advisories::table
            .inner_join(advisories::table)
            .filter(patch_advisories::patch_id.eq(id))
            .filter(advisories::emergency.eq(true))
            .filter(advisories::status.eq(crate::domain::AdvisoryStatus::Published.as_str()))
            .count()
            .get_result(conn)?;
        Ok(count > 0)
    }

    pub fn fixes(conn: &mut DbConnection, id: &PatchId) -> QueryResult<Vec<String>> {
        let rows: Vec<(AdvisoryId, Option<String>)> = patch_advisories::table
            .inner_join(advisories::table)
            .filter(patch_advisories::patch_id.eq(id))
            .select((advisories::id, advisories::public_id))
            .load(conn)?;
        let mut ids: Vec<String> = rows
            .into_iter()
            .map(|(id, public)| public.unwrap_or_else(|| id.to_string()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The advisories a patch fixes that are not published: (id, title).
    pub fn unpublished_fixes(conn: &mut DbConnection, id: &PatchId) -> QueryResult<Vec<(AdvisoryId, String)>> {
        patch_advisories::table
            .inner_join(advisories::table)
            .filter(patch_advisories::patch_id.eq(id))
            .filter(advisories::status.ne(AdvisoryStatus::Published.as_str()))
            .select((advisories::id, advisories::title))
            .order(advisories::id)
            .load(conn)
    }

    /// The SHA-256 of every file a patch references.
    pub fn referenced_files(conn: &mut DbConnection) -> QueryResult<Vec<String>> {
        patches::table
            .filter(patches::sha256.is_not_null())
            .select(patches::sha256.assume_not_null())
            .distinct()
            .load(conn)
    }

    /// One patch with its product and fixes.
    pub fn view(conn: &mut DbConnection, id: &PatchId) -> QueryResult<Option<PatchView>> {
        let Some((patch, product)) = patches::table
            .inner_join(products::table)
            .filter(patches::id.eq(id))
            .select((PatchRecord::as_select(), Product::as_select()))
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let fixes = Self::fixes(conn, &patch.id)?;
        Ok(Some(PatchView { patch, product, fixes }))
    }

    /// Patches visible to a caller: every patch for the vendor (`None`), or the
    /// published and yanked patches of the products `customer` is entitled to.
    pub fn list(conn: &mut DbConnection, customer: Option<&CustomerId>) -> QueryResult<Vec<PatchView>> {
        let mut query = patches::table
            .inner_join(products::table)
            .order(patches::created_at.desc())
            .select((PatchRecord::as_select(), Product::as_select()))
            .into_boxed();
        if let Some(customer) = customer {
            let entitled = entitlements::table
                .filter(entitlements::customer_id.eq(customer.clone()))
                .select(entitlements::product_id);
            query = query
                .filter(patches::state.ne(PatchState::Draft.as_str()))
                .filter(patches::product_id.eq_any(entitled));
        }
        let rows = query.load(conn)?;
        rows.into_iter()
            .map(|(patch, product)| {
                let fixes = Self::fixes(conn, &patch.id)?;
                Ok(PatchView { patch, product, fixes })
            })
            .collect()
    }

    /// Published and yanked patches that fix an advisory.
    pub fn fixing(conn: &mut DbConnection, advisory: &AdvisoryId) -> QueryResult<Vec<PatchRecord>> {
        let ids = patch_advisories::table
            .filter(patch_advisories::advisory_id.eq(advisory))
            .select(patch_advisories::patch_id);
        patches::table
            .filter(patches::id.eq_any(ids))
            .filter(patches::state.ne(PatchState::Draft.as_str()))
            .order(patches::version)
            .select(PatchRecord::as_select())
            .load(conn)
    }
}

/// Whether `customer` is entitled to `product`.
pub fn is_entitled(conn: &mut DbConnection, customer: &CustomerId, product: &ProductId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        entitlements::table
            .filter(entitlements::customer_id.eq(customer))
            .filter(entitlements::product_id.eq(product)),
    ))
    .get_result(conn)
}

/// The product slugs a customer is entitled to.
pub fn entitled_products(conn: &mut DbConnection, customer: &CustomerId) -> QueryResult<Vec<String>> {
    entitlements::table
        .inner_join(products::table)
        .filter(entitlements::customer_id.eq(customer))
        .order(products::slug)
        .select(products::slug)
        .load(conn)
}

/// Replaces the entitlements of a customer.
pub fn set_entitlements(
    conn: &mut DbConnection,
    customer: &CustomerId,
    products: &[ProductId],
    at: NaiveDateTime,
) -> QueryResult<()> {
    conn.write_transaction(|conn| {
        diesel::delete(entitlements::table.filter(entitlements::customer_id.eq(customer))).execute(conn)?;
        for product in products {
            diesel::insert_into(entitlements::table)
                .values((
                    entitlements::customer_id.eq(customer),
                    entitlements::product_id.eq(product),
                    entitlements::created_at.eq(at),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
}

/// Every entitlement, as (customer, product).
pub fn all_entitlements(conn: &mut DbConnection) -> QueryResult<Vec<(CustomerId, ProductId)>> {
    entitlements::table
        .select((entitlements::customer_id, entitlements::product_id))
        .load(conn)
}
