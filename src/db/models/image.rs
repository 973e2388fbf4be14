//! Release image hashes the vendor registered per product version: what an
//! untampered device of that version runs.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{patches, release_images};
use crate::db::DbConnection;
use crate::domain::PatchState;
use crate::ids::{ProductId, ReleaseImageId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = release_images)]
pub struct ReleaseImage {
    pub id: ReleaseImageId,
    pub product_id: ProductId,
    pub version: String,
    /// Empty for every platform.
    pub platform: String,
    pub image_sha256: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
}

impl ReleaseImage {
    /// Registers `image`; registering the same one again changes nothing. Whether it
    /// was new.
    pub fn insert(conn: &mut DbConnection, image: &ReleaseImage) -> QueryResult<bool> {
        let exists = diesel::select(diesel::dsl::exists(
            release_images::table
                .filter(release_images::product_id.eq(&image.product_id))
                .filter(release_images::image_sha256.eq(&image.image_sha256))
                .filter(release_images::version.eq(&image.version))
                .filter(release_images::platform.eq(&image.platform)),
        ))
        .get_result::<bool>(conn)?;
        if exists {
            return Ok(false);
        }
        diesel::insert_into(release_images::table).values(image).execute(conn)?;
        Ok(true)
    }

    pub fn of_product(conn: &mut DbConnection, product: &ProductId) -> QueryResult<Vec<ReleaseImage>> {
        release_images::table
            .filter(release_images::product_id.eq(product))
            .order((
                release_images::version,
                release_images::platform,
                release_images::created_at,
            ))
            .select(ReleaseImage::as_select())
            .load(conn)
    }

    /// Whether `sha256` is a signed release of `product` at `version` (on `platform`):
    /// a registered release image, or the file of a published (or since yanked)
    /// patch to that version.
    pub fn explains(
        conn: &mut DbConnection,
        product: &ProductId,
        version: &str,
        platform: Option<&str>,
        sha256: &str,
    ) -> QueryResult<bool> {
        let platforms = ["", platform.unwrap_or("")];
        let registered = diesel::select(diesel::dsl::exists(
            release_images::table
                .filter(release_images::product_id.eq(product))
                .filter(release_images::image_sha256.eq(sha256))
                .filter(release_images::version.eq(version))
                .filter(release_images::platform.eq_any(platforms)),
        ))
        .get_result::<bool>(conn)?;
        if registered {
            return Ok(true);
        }
        diesel::select(diesel::dsl::exists(
            patches::table
                .filter(patches::product_id.eq(product))
                .filter(patches::sha256.eq(sha256))
                .filter(patches::version.eq(version))
                .filter(patches::state.eq_any([PatchState::Published.as_str(), PatchState::Yanked.as_str()])),
        ))
        .get_result(conn)
    }
}
