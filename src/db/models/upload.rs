//! Resumable uploads of draft patch files: one per draft at most, with the number of
//! bytes the server holds and where the storage keeps them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{patch_uploads, patches};
use crate::db::DbConnection;
use crate::domain::PatchState;
use crate::ids::PatchId;

#[derive(Clone, Debug, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = patch_uploads, primary_key(patch_id))]
pub struct PatchUpload {
    pub patch_id: PatchId,
    /// Name of the partial file or object in storage.
    pub storage_key: String,
    /// The S3 multipart upload that holds the completed parts.
    pub multipart_id: Option<String>,
    /// JSON array of the completed parts' ETags, in order.
    pub parts: String,
    pub size: i64,
    /// The SHA-256 the client declared for the whole file.
    pub sha256: Option<String>,
    pub received: i64,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl PatchUpload {
    pub fn find(conn: &mut DbConnection, patch: &PatchId) -> QueryResult<Option<PatchUpload>> {
        patch_uploads::table
            .find(patch)
            .select(PatchUpload::as_select())
            .first(conn)
            .optional()
    }

    /// Records a new upload in place of the patch's previous one, which it returns.
    pub fn replace(conn: &mut DbConnection, upload: &PatchUpload) -> QueryResult<Option<PatchUpload>> {
        conn.write_transaction(|conn| {
            let previous = PatchUpload::find(conn, &upload.patch_id)?;
            diesel::delete(patch_uploads::table.find(&upload.patch_id)).execute(conn)?;
            diesel::insert_into(patch_uploads::table).values(upload).execute(conn)?;
            Ok(previous)
        })
    }

    /// Moves an upload forward from `from` bytes; 0 when another request moved it first.
    pub fn advance(
        conn: &mut DbConnection,
        patch: &PatchId,
        from: i64,
        received: i64,
        parts: &str,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(
            patch_uploads::table
                .find(patch)
                .filter(patch_uploads::received.eq(from)),
        )
        .set((
            patch_uploads::received.eq(received),
            patch_uploads::parts.eq(parts),
            patch_uploads::updated_at.eq(at),
        ))
        .execute(conn)
    }

    /// Forgets an upload; 0 when there was none with that key.
    pub fn delete(conn: &mut DbConnection, patch: &PatchId, storage_key: &str) -> QueryResult<usize> {
        diesel::delete(
            patch_uploads::table
                .find(patch)
                .filter(patch_uploads::storage_key.eq(storage_key)),
        )
        .execute(conn)
    }

    /// Every upload with the state of its patch.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<(PatchUpload, PatchState)>> {
        let rows: Vec<(PatchUpload, String)> = patch_uploads::table
            .inner_join(patches::table)
            .select((PatchUpload::as_select(), patches::state))
            .load(conn)?;
        rows.into_iter()
            .map(|(upload, state)| {
                let state = PatchState::try_from(state)
                    .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))?;
                Ok((upload, state))
            })
            .collect()
    }
}
