//! Enrolment tokens: bearer credentials with which devices enrol themselves into one
//! customer's fleet, a limited number of times, until they expire or are revoked.
//! Stored as SHA-256 of their secret part, like API tokens.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::enrollment_tokens;
use crate::db::DbConnection;
use crate::ids::{CustomerId, EnrollmentTokenId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable, Insertable)]
#[diesel(table_name = enrollment_tokens)]
pub struct EnrollmentToken {
    pub id: EnrollmentTokenId,
    pub customer_id: CustomerId,
    pub label: String,
    pub lookup: String,
    pub secret_hash: String,
    pub max_uses: i32,
    pub uses: i32,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

impl EnrollmentToken {
    pub fn insert(conn: &mut DbConnection, token: &EnrollmentToken) -> QueryResult<()> {
        diesel::insert_into(enrollment_tokens::table)
            .values(token)
            .execute(conn)
            .map(drop)
    }

    pub fn find_by_lookup(conn: &mut DbConnection, lookup: &str) -> QueryResult<Option<EnrollmentToken>> {
        enrollment_tokens::table
            .filter(enrollment_tokens::lookup.eq(lookup))
            .select(EnrollmentToken::as_select())
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConnection, id: &EnrollmentTokenId) -> QueryResult<Option<EnrollmentToken>> {
        enrollment_tokens::table
            .find(id)
            .select(EnrollmentToken::as_select())
            .first(conn)
            .optional()
    }

    /// A customer's tokens, newest first.
    pub fn of_customer(conn: &mut DbConnection, customer: &CustomerId) -> QueryResult<Vec<EnrollmentToken>> {
        enrollment_tokens::table
            .filter(enrollment_tokens::customer_id.eq(customer))
            .order(enrollment_tokens::created_at.desc())
            .select(EnrollmentToken::as_select())
            .load(conn)
    }

    /// How many of `customer`'s tokens could still enrol a device at `at`.
    pub fn count_usable(conn: &mut DbConnection, customer: &CustomerId, at: NaiveDateTime) -> QueryResult<i64> {
        enrollment_tokens::table
            .filter(enrollment_tokens::customer_id.eq(customer))
            .filter(enrollment_tokens::uses.lt(enrollment_tokens::max_uses))
            .filter(enrollment_tokens::revoked_at.is_null())
            .filter(enrollment_tokens::expires_at.gt(at))
            .count()
            .get_result(conn)
    }

    /// Spends one use of token `id` at `at`, in one statement that checks it is still
    /// unrevoked, unexpired and not used up: a revocation or expiry that commits
    /// between reading the token and spending it is not overtaken.
    pub fn spend(conn: &mut DbConnection, id: &EnrollmentTokenId, at: NaiveDateTime) -> QueryResult<bool> {
        let changed = diesel::update(
            enrollment_tokens::table
                .find(id)
                .filter(enrollment_tokens::uses.lt(enrollment_tokens::max_uses))
                .filter(enrollment_tokens::revoked_at.is_null())
                .filter(enrollment_tokens::expires_at.gt(at)),
        )
        .set(enrollment_tokens::uses.eq(enrollment_tokens::uses + 1))
        .execute(conn)?;
        Ok(changed == 1)
    }

    pub fn revoke(conn: &mut DbConnection, id: &EnrollmentTokenId, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            enrollment_tokens::table
                .find(id)
                .filter(enrollment_tokens::revoked_at.is_null()),
        )
        .set(enrollment_tokens::revoked_at.eq(at))
        .execute(conn)
    }
}
