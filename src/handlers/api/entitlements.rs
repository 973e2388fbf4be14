//! Entitlements: which products' patches a customer may download.
//! `PUT /api/v1/customers/{slug}/entitlements` (vendor-admin) replaces the list;
//! `GET` shows it to the vendor and to the customer's own admins.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, VendorAdmin};
use crate::error::AppError;
use crate::services::tenants;
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
    let wanted = body.into_inner().products;
    let (customer, products) =
        tenants::set_customer_entitlements(&state, &caller.0.caller(), slug.into_inner(), wanted).await?;
    Ok(HttpResponse::Ok().json(EntitlementsResponse { customer, products }))
}

pub async fn get_entitlements(
    state: web::Data<AppState>,
    caller: AuthUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (customer, products) = tenants::entitlements(&state, &caller.scope, slug.into_inner()).await?;
    Ok(HttpResponse::Ok().json(EntitlementsResponse { customer, products }))
}
