//! Entitlements: which products' patches a customer may download.
//! `PUT /api/v1/customers/{slug}/entitlements` (vendor-admin) replaces the list;
//! `GET` shows it to the vendor and to the customer's own admins.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, VendorAdmin};
use crate::db::models::patch::{entitled_products, set_entitlements};
use crate::db::models::{now, Customer, Product};
use crate::error::AppError;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitlementsRequest {
    pub products: Vec<String>,
}

#[derive(Serialize)]
pub struct EntitlementsResponse {
    pub customer: String,
    pub products: Vec<String>,
}

pub async fn put_entitlements(
    state: web::Data<AppState>,
    caller: VendorAdmin,
    slug: web::Path<String>,
    body: web::Json<EntitlementsRequest>,
) -> Result<HttpResponse, AppError> {
    let slug = slug.into_inner();
    let wanted = body.into_inner().products;
    let products = state
        .db
        .run(move |conn| {
            let customer = Customer::find_by_slug(conn, &slug)?.ok_or(AppError::NotFound("customer"))?;
            let mut ids = Vec::new();
            for (i, product) in wanted.iter().enumerate() {
                let found = Product::find_by_slug(conn, product)?.ok_or_else(|| {
                    AppError::invalid(format!("products[{i}]"), format!("there is no product `{product}`"))
                })?;
                if !ids.contains(&found.id) {
                    ids.push(found.id);
                }
            }
            set_entitlements(conn, &customer.id, &ids, now())?;
            Ok::<_, AppError>((customer.slug, entitled_products(conn, &customer.id)?))
        })
        .await?;
    tracing::info!(customer.slug = %products.0, user.id = %caller.0.user.id, "set entitlements");
    Ok(HttpResponse::Ok().json(EntitlementsResponse {
        customer: products.0,
        products: products.1,
    }))
}

pub async fn get_entitlements(
    state: web::Data<AppState>,
    caller: AuthUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let slug = slug.into_inner();
    let scope = caller.scope.clone();
    let (customer, products) = state
        .db
        .run(move |conn| {
            let customer = Customer::find_by_slug(conn, &slug)?
                .filter(|c| scope.can_see(Some(&c.id)))
                .ok_or(AppError::NotFound("customer"))?;
            let products = entitled_products(conn, &customer.id)?;
            Ok::<_, AppError>((customer.slug, products))
        })
        .await?;
    Ok(HttpResponse::Ok().json(EntitlementsResponse { customer, products }))
}
