//! Web sessions: the server side of the login cookie, with the CSRF token of forms.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{sessions, users};
use crate::db::DbConnection;
use crate::ids::UserId;

use super::User;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// The lookup part of the cookie.
    pub id: String,
    pub secret_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub secret_hash: &'a str,
    pub user_id: &'a UserId,
    pub csrf_token: &'a str,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
}

impl Session {
    pub fn insert(conn: &mut DbConnection, new: &NewSession<'_>) -> QueryResult<()> {
        diesel::insert_into(sessions::table).values(new).execute(conn).map(drop)
    }

    /// The unexpired session with this id and its user.
    pub fn find_live(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> QueryResult<Option<(Session, User)>> {
        sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(id))
            .filter(sessions::expires_at.gt(at))
            .select((Session::as_select(), User::as_select()))
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut DbConnection, id: &str) -> QueryResult<usize> {
        diesel::delete(sessions::table.find(id)).execute(conn)
    }

    /// Ends every session of `user`; returns how many.
    pub fn delete_for_user(conn: &mut DbConnection, user: &UserId) -> QueryResult<usize> {
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user))).execute(conn)
    }

    /// Ends every session of `user` but `keep`; returns how many.
    pub fn delete_others(conn: &mut DbConnection, user: &UserId, keep: &str) -> QueryResult<usize> {
        diesel::delete(
            sessions::table
                .filter(sessions::user_id.eq(user))
                .filter(sessions::id.ne(keep)),
        )
        .execute(conn)
    }

    /// Live sessions per user among `users`.
    pub fn live_counts(
        conn: &mut DbConnection,
        users: &[UserId],
        at: NaiveDateTime,
    ) -> QueryResult<Vec<(UserId, i64)>> {
        sessions::table
            .filter(sessions::user_id.eq_any(users))
            .filter(sessions::expires_at.gt(at))
            .group_by(sessions::user_id)
            .select((sessions::user_id, diesel::dsl::count_star()))
            .load(conn)
    }

    /// Removes sessions that have expired; returns how many.
    pub fn delete_expired(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<usize> {
        diesel::delete(sessions::table.filter(sessions::expires_at.le(at))).execute(conn)
    }
}
