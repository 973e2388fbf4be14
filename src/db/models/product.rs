//! Products and their version schemes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::products;
use crate::db::DbConnection;
use crate::domain::advisory::ProductInfo;
use crate::domain::version::VersionScheme;
use crate::ids::ProductId;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = products)]
pub struct Product {
    pub id: ProductId,
    pub slug: String,
    pub name: String,
    /// Read as its type: a scheme the code does not know is an error, not a default.
    #[diesel(deserialize_as = String)]
    pub version_scheme: VersionScheme,
    pub created_at: NaiveDateTime,
}

#[derive(Insertable)]
#[diesel(table_name = products)]
pub struct NewProduct<'a> {
    pub id: &'a ProductId,
    pub slug: &'a str,
    pub name: &'a str,
    pub version_scheme: &'a str,
    pub created_at: NaiveDateTime,
}

impl Product {
    /// The scheme; the database's CHECK constraint keeps the column to known values.
    pub fn scheme(&self) -> VersionScheme {
        self.version_scheme
    }

    pub fn info(&self) -> ProductInfo {
        ProductInfo {
            slug: self.slug.clone(),
            name: self.name.clone(),
            scheme: self.scheme(),
        }
    }

    pub fn insert(conn: &mut DbConnection, new: &NewProduct<'_>) -> QueryResult<Product> {
        diesel::insert_into(products::table).values(new).execute(conn)?;
        products::table.find(new.id).select(Product::as_select()).first(conn)
    }

    pub fn find_by_slug(conn: &mut DbConnection, slug: &str) -> QueryResult<Option<Product>> {
        products::table
            .filter(products::slug.eq(slug))
            .select(Product::as_select())
            .first(conn)
            .optional()
    }

    pub fn find(conn: &mut DbConnection, id: &ProductId) -> QueryResult<Option<Product>> {
        products::table
            .find(id)
            .select(Product::as_select())
            .first(conn)
            .optional()
    }

    pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<Product>> {
        products::table
            .order(products::slug)
            .select(Product::as_select())
            .load(conn)
    }
}
