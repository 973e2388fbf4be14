//! The check value of the key that seals secrets at rest, and whether anything
//! sealed is stored at all.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{device_pulls, sealing_key_check, webhooks};
use crate::db::DbConnection;

/// The stored check value, when there is one.
pub fn check(conn: &mut DbConnection) -> QueryResult<Option<String>> {
    sealing_key_check::table
        .find(1)
        .select(sealing_key_check::sealed)
        .first(conn)
        .optional()
}

/// Stores `sealed` as the check value unless one is stored already (another
/// instance's, say); returns the one that is stored now.
pub fn set_check(conn: &mut DbConnection, sealed: &str, at: NaiveDateTime) -> QueryResult<String> {
    let inserted = diesel::insert_into(sealing_key_check::table)
        .values((
            sealing_key_check::id.eq(1),
            sealing_key_check::sealed.eq(sealed),
            sealing_key_check::created_at.eq(at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) | Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {}
        Err(err) => return Err(err),
    }
    sealing_key_check::table
        .find(1)
        .select(sealing_key_check::sealed)
        .first(conn)
}

/// Whether the database holds any sealed value (a pull token, a webhook secret).
pub fn holds_sealed_values(conn: &mut DbConnection) -> QueryResult<bool> {
    let tokens = diesel::select(diesel::dsl::exists(
        device_pulls::table.filter(device_pulls::token_sealed.is_not_null()),
    ))
    .get_result::<bool>(conn)?;
    if tokens {
        return Ok(true);
    }
    diesel::select(diesel::dsl::exists(webhooks::table.select(webhooks::id))).get_result(conn)
}
