//! API tokens: bearer credentials of users, stored as SHA-256 of their secret part.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{api_tokens, users};
use crate::db::DbConnection;
use crate::ids::{CustomerId, TokenId, UserId};

use super::User;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: TokenId,
    pub user_id: UserId,
    pub label: String,
    pub lookup: String,
    pub secret_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

#[derive(Insertable)]
#[diesel(table_name = api_tokens)]
pub struct NewApiToken<'a> {
    pub id: &'a TokenId,
    pub user_id: &'a UserId,
    pub label: &'a str,
    pub lookup: &'a str,
    pub secret_hash: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
}

/// How often, at most, `last_used_at` is written for one token: a token used in a
/// tight loop must not turn every request into a database write.
pub const LAST_USED_GRANULARITY_SECS: i64 = 60;

impl ApiToken {
    pub fn insert(conn: &mut DbConnection, new: &NewApiToken<'_>) -> QueryResult<ApiToken> {
        diesel::insert_into(api_tokens::table).values(new).execute(conn)?;
        api_tokens::table.find(new.id).select(ApiToken::as_select()).first(conn)
    }

    /// The token with this lookup part and its owner.
    pub fn find_by_lookup(conn: &mut DbConnection, lookup: &str) -> QueryResult<Option<(ApiToken, User)>> {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::lookup.eq(lookup))
            .select((ApiToken::as_select(), User::as_select()))
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConnection, id: &TokenId) -> QueryResult<Option<(ApiToken, User)>> {
        api_tokens::table
            .inner_join(users::table)
            .filter(api_tokens::id.eq(id))
            .select((ApiToken::as_select(), User::as_select()))
            .first(conn)
            .optional()
    }

    /// Tokens of one user, of one customer's users, or of everyone.
    pub fn list(
        conn: &mut DbConnection,
        user: Option<&UserId>,
        customer: Option<&CustomerId>,
    ) -> QueryResult<Vec<(ApiToken, User)>> {
        let mut query = api_tokens::table
            .inner_join(users::table)
            .order(api_tokens::created_at.desc())
            .select((ApiToken::as_select(), User::as_select()))
            .into_boxed();
        if let Some(user) = user {
            query = query.filter(api_tokens::user_id.eq(user));
        }
        if let Some(customer) = customer {
            query = query.filter(users::customer_id.eq(customer));
        }
        query.load(conn)
    }

    /// Marks the token revoked; returns 0 when it already was.
    pub fn revoke(conn: &mut DbConnection, id: &TokenId, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(api_tokens::table.find(id).filter(api_tokens::revoked_at.is_null()))
            .set(api_tokens::revoked_at.eq(at))
            .execute(conn)
    }

    /// Revokes every unrevoked token of `user`; returns how many.
    pub fn revoke_all_of(conn: &mut DbConnection, user: &UserId, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            api_tokens::table
                .filter(api_tokens::user_id.eq(user))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(at))
        .execute(conn)
    }

    /// Records a use, unless one was recorded within the last minute.
    pub fn touch(conn: &mut DbConnection, token: &ApiToken, at: NaiveDateTime) -> QueryResult<()> {
        let fresh = token
            .last_used_at
            .is_some_and(|last| (at - last).num_seconds() < LAST_USED_GRANULARITY_SECS);
        if !fresh {
            diesel::update(api_tokens::table.find(&token.id))
                .set(api_tokens::last_used_at.eq(at))
                .execute(conn)?;
        }
        Ok(())
    }

    /// How many of `user`'s tokens are neither revoked nor expired at `at`.
    pub fn count_live(conn: &mut DbConnection, user: &UserId, at: NaiveDateTime) -> QueryResult<i64> {
        api_tokens::table
            .filter(api_tokens::user_id.eq(user))
            .filter(api_tokens::revoked_at.is_null())
            .filter(api_tokens::expires_at.is_null().or(api_tokens::expires_at.gt(at)))
            .count()
            .get_result(conn)
    }

    /// Whether the token may be used at `at`.
    pub fn is_active(&self, at: NaiveDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|expiry| at < expiry)
    }
}
