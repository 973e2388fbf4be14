//! Customers: `POST /api/v1/customers`, `GET /api/v1/customers`,
//! `GET /api/v1/customers/{slug}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, VendorAdmin};
use crate::db::models::utc;
use crate::db::models::Customer;
use crate::error::AppError;
use crate::ids::CustomerId;
use crate::services::tenants;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerRequest {
    pub slug: String,
    pub name: String,
}

#[derive(Serialize)]
pub struct CustomerResponse {
    pub id: CustomerId,
    pub slug: String,
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Customer> for CustomerResponse {
    fn from(c: Customer) -> Self {
        CustomerResponse {
            id: c.id,
            slug: c.slug,
            name: c.name,
            created_at: utc(c.created_at),
        }
    }
}

pub async fn create_customer(
    state: web::Data<AppState>,
    caller: VendorAdmin,
    body: web::Json<CreateCustomerRequest>,
) -> Result<HttpResponse, AppError> {
    let CreateCustomerRequest { slug, name } = body.into_inner();
    let customer = tenants::create_customer(&state, &caller.0.caller(), slug, name).await?;
    Ok(HttpResponse::Created().json(CustomerResponse::from(customer)))
}

pub async fn list_customers(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<web::Json<Vec<CustomerResponse>>, AppError> {
    let customers = tenants::customers(&state, &caller.scope).await?;
    Ok(web::Json(customers.into_iter().map(CustomerResponse::from).collect()))
}

pub async fn get_customer(
    state: web::Data<AppState>,
    caller: AuthUser,
    slug: web::Path<String>,
) -> Result<web::Json<CustomerResponse>, AppError> {
    let customer = tenants::customer(&state, &caller.scope, slug.into_inner()).await?;
    Ok(web::Json(customer.into()))
}
