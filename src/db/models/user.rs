//! Users: vendor staff and customer admins.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::users;
use crate::db::DbConnection;
use crate::domain::Role;
use crate::ids::{CustomerId, UserId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    #[diesel(deserialize_as = String)]
    pub role: Role,
    pub customer_id: Option<CustomerId>,
    pub created_at: NaiveDateTime,
    /// The password is a one-time one an admin was shown: it may only be used to
    /// set a password of the user's own.
    pub password_change_required: bool,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub id: &'a UserId,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub role: &'a str,
    pub customer_id: Option<&'a CustomerId>,
    pub created_at: NaiveDateTime,
    pub password_change_required: bool,
}

impl User {
    pub fn insert(conn: &mut DbConnection, new: &NewUser<'_>) -> QueryResult<User> {
        diesel::insert_into(users::table).values(new).execute(conn)?;
        users::table.find(new.id).select(User::as_select()).first(conn)
    }

    pub fn find(conn: &mut DbConnection, id: &UserId) -> QueryResult<Option<User>> {
        users::table.find(id).select(User::as_select()).first(conn).optional()
    }

    pub fn find_by_email(conn: &mut DbConnection, email: &str) -> QueryResult<Option<User>> {
        users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .first(conn)
            .optional()
    }

    pub fn delete(conn: &mut DbConnection, id: &UserId) -> QueryResult<usize> {
        diesel::delete(users::table.find(id)).execute(conn)
    }

    /// Sets the password; one set this way is the user's own, never one-time.
    pub fn set_password_hash(conn: &mut DbConnection, id: &UserId, hash: &str) -> QueryResult<usize> {
        diesel::update(users::table.find(id))
            .set((users::password_hash.eq(hash), users::password_change_required.eq(false)))
            .execute(conn)
    }
}

/// A user with the slug of its customer, as listed.
pub type UserWithCustomer = (User, Option<String>);

impl User {
    /// Users with their customer's slug: all of them, or one customer's.
    pub fn list_with_customer(
        conn: &mut DbConnection,
        customer: Option<&CustomerId>,
    ) -> QueryResult<Vec<UserWithCustomer>> {
        use crate::db::schema::customers;
        let mut query = users::table
            .left_join(customers::table)
            .order(users::email)
            .select((User::as_select(), customers::slug.nullable()))
            .into_boxed();
        if let Some(customer) = customer {
            query = query.filter(users::customer_id.eq(customer));
        }
        query.load(conn)
    }

    /// One user with its customer's slug.
    pub fn find_with_customer(conn: &mut DbConnection, id: &UserId) -> QueryResult<Option<UserWithCustomer>> {
        use crate::db::schema::customers;
        users::table
            .left_join(customers::table)
            .filter(users::id.eq(id))
            .select((User::as_select(), customers::slug.nullable()))
            .first(conn)
            .optional()
    }
}

impl User {
    pub fn count(conn: &mut DbConnection, customer: Option<&CustomerId>) -> QueryResult<i64> {
        let mut query = users::table.count().into_boxed();
        if let Some(customer) = customer {
            query = query.filter(users::customer_id.eq(customer));
        }
        query.get_result(conn)
    }

    /// Takes the user's row lock until the transaction ends (on SQLite the write
    /// lock), so that counting what the user keeps and adding one more is not
    /// overtaken by a concurrent request doing the same.
    pub fn hold(conn: &mut DbConnection, id: &UserId) -> QueryResult<()> {
        diesel::update(users::table.find(id))
            .set(users::id.eq(users::id))
            .execute(conn)
            .map(drop)
    }
}
