//! The tenants and what they may have: the products the vendor ships, customers
//! and their entitlements. Customers are visible to the vendor and each to its own
//! admins; a customer that the caller may not see is not found.

use crate::db::models::patch::{entitled_products, set_entitlements};

use crate::db::models::{now, Customer, Generations, NewProduct, Product};
use crate::domain::version::VersionScheme;
use crate::domain::{text, Caller, Scope, Slug};
use crate::ids::ProductId;
use crate::services::accounts;
use crate::services::error::is_unique_violation;
use crate::services::{ServiceError, Services};

/// Registers a product; 409 when the slug is taken.
pub async fn create_product(
    services: &Services,
    caller: &Caller,
    slug: &str,
    name: &str,
    version_scheme: &str,
) -> Result<Product, ServiceError> {
    let slug: Slug = slug
        .parse()
        .map_err(|e| ServiceError::invalid("slug", format!("slug {e}")))?;
    let name = text::NAME.check("name", name, true)?;
    let scheme: VersionScheme = version_scheme
        .parse()
        .map_err(|e: String| ServiceError::invalid("version_scheme", e))?;
    let product = services
        .db
        .run(move |conn| {
            let id = ProductId::generate();
            let new = NewProduct {
                id: &id,
                slug: slug.as_str(),
                name: &name,
                version_scheme: scheme.as_str(),
                created_at: now(),
            };
            Product::insert(conn, &new).map_err(|err| {
                if is_unique_violation(&err) {
                    ServiceError::Conflict(format!("a product with slug `{slug}` already exists"))
                } else {
                    err.into()
                }
            })
        })
        .await?;
    tracing::info!(product.slug = %product.slug, user.id = %caller.user, "created product");
    Ok(product)
}

/// Every product.
pub async fn products(services: &Services) -> Result<Vec<Product>, ServiceError> {
    Ok(services.db.query(Product::list).await?)
}

/// Creates a customer; 409 when the slug is taken.
pub async fn create_customer(
    services: &Services,
    caller: &Caller,
    slug: String,
    name: String,
) -> Result<Customer, ServiceError> {
    let customer = services
        .db
        .run(move |conn| accounts::create_customer(conn, &slug, &name))
        .await?;
    tracing::info!(customer.slug = %customer.slug, user.id = %caller.user, "created customer");
    Ok(customer)
}

/// The customers `scope` may see: all, or its own.
pub async fn customers(services: &Services, scope: &Scope) -> Result<Vec<Customer>, ServiceError> {
    let scope = scope.clone();
    Ok(services
        .db
        .query(move |conn| match scope.customer() {
            None => Customer::list(conn),
            Some(own) => Ok(Customer::find(conn, own)?.into_iter().collect()),
        })
        .await?)
}

/// The customer `slug` if `scope` may see it.
pub async fn customer(services: &Services, scope: &Scope, slug: String) -> Result<Customer, ServiceError> {
    let scope = scope.clone();
    services
        .db
        .query(move |conn| Customer::find_by_slug(conn, &slug))
        .await?
        .filter(|c| scope.can_see(Some(&c.id)))
        .ok_or(ServiceError::NotFound("customer"))
}

/// The products a customer is entitled to: its slug and the product slugs.
pub async fn entitlements(
    services: &Services,
    scope: &Scope,
    slug: String,
) -> Result<(String, Vec<String>), ServiceError> {
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let customer = Customer::find_by_slug(conn, &slug)?
                .filter(|c| scope.can_see(Some(&c.id)))
                .ok_or(ServiceError::NotFound("customer"))?;
            let products = entitled_products(conn, &customer.id)?;
            Ok((customer.slug, products))
        })
        .await
}

/// Replaces what a customer is entitled to with `wanted` (product slugs).
pub async fn set_customer_entitlements(
    services: &Services,
    caller: &Caller,
    slug: String,
    wanted: Vec<String>,
) -> Result<(String, Vec<String>), ServiceError> {
    let (customer, products) = services
        .db
        .run(move |conn| {
            let customer = Customer::find_by_slug(conn, &slug)?.ok_or(ServiceError::NotFound("customer"))?;
            let mut ids = Vec::new();
            for (i, product) in wanted.iter().enumerate() {
                let found = Product::find_by_slug(conn, product)?.ok_or_else(|| {
                    ServiceError::invalid(format!("products[{i}]"), format!("there is no product `{product}`"))
                })?;
                if !ids.contains(&found.id) {
                    ids.push(found.id);
                }
            }
            conn.write_transaction(|conn| {
                set_entitlements(conn, &customer.id, &ids, now())?;
                Generations::catalogue_changed(conn)
            })?;
            Ok::<_, ServiceError>((customer.slug, entitled_products(conn, &customer.id)?))
        })
        .await?;
    crate::services::fleet::refresh(services).await;
    tracing::info!(customer.slug = %customer, user.id = %caller.user, "set entitlements");
    Ok((customer, products))
}
