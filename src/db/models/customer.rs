//! Customers: the tenants.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::customers;
use crate::db::DbConnection;
use crate::ids::CustomerId;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = customers)]
pub struct Customer {
    pub id: CustomerId,
    pub slug: String,
    pub name: String,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = customers)]
pub struct NewCustomer<'a> {
    pub id: &'a CustomerId,
    pub slug: &'a str,
    pub name: &'a str,
    pub created_at: NaiveDateTime,
}

impl Customer {
    pub fn insert(conn: &mut DbConnection, new: &NewCustomer<'_>) -> QueryResult<Customer> {
        diesel::insert_into(customers::table).values(new).execute(conn)?;
        customers::table.find(new.id).select(Customer::as_select()).first(conn)
    }

    pub fn find(conn: &mut DbConnection, id: &CustomerId) -> QueryResult<Option<Customer>> {
        customers::table
            .find(id)
            .select(Customer::as_select())
            .first(conn)
            .optional()
    }

    pub fn find_by_slug(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Customer>> {
        customers::table
            .filter(customers::slug.eq(slug))
            .select(Customer::as_select())
            .first(conn)
            .optional()
    }

    pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Customer>> {
        customers::table
            .order(customers::slug)
            .select(Customer::as_select())
            .load(conn)
    }
}

impl Customer {
    pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
        customers::table.count().get_result(conn)
    }

    /// Takes the customer's row lock until the transaction ends (on SQLite the
    /// write lock), so that counting what the customer keeps and adding one more
    /// is not overtaken by a concurrent request doing the same.
    pub fn hold(conn: &mut DbConnection, id: &CustomerId) -> QueryResult<()> {
        diesel::update(customers::table.find(id))
            .set(customers::id.eq(customers::id))
            .execute(conn)
            .map(drop)
    }
}
