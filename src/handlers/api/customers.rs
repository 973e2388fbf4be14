//! Customers: `POST /api/v1/customers`, `GET /api/v1/customers`,
//! `GET /api/v1/customers/{slug}`.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, VendorAdmin};
use crate::db::models::Customer;
use crate::error::AppError;
use crate::http::utc;
use crate::ids::CustomerId;
use crate::services::accounts;
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
    let customer = state
        .db
        .run(move |conn| accounts::create_customer(conn, &slug, &name))
        .await?;
    tracing::info!(customer.slug = %customer.slug, user.id = %caller.0.user.id, "created customer");
    Ok(HttpResponse::Created().json(CustomerResponse::from(customer)))
}

pub async fn list_customers(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<web::Json<Vec<CustomerResponse>>, AppError> {
    let scope = caller.scope.clone();
    let customers = state
        .db
        .run(move |conn| -> Result<_, crate::services::ServiceError> {
            match scope.customer() {
                None => Ok(Customer::list(conn)?),
                Some(own) => Ok(Customer::find(conn, own)?.into_iter().collect()),
            }
        })
        .await?;
    let visible = customers.into_iter().map(CustomerResponse::from).collect();
    Ok(web::Json(visible))
}

pub async fn get_customer(
    state: web::Data<AppState>,
    caller: AuthUser,
    slug: web::Path<String>,
) -> Result<web::Json<CustomerResponse>, AppError> {
    let slug = slug.into_inner();
    let customer = state.db.query(move |conn| Customer::find_by_slug(conn, &slug)).await?;
    customer
        .filter(|c| caller.scope.can_see(Some(&c.id)))
        .map(|c| web::Json(c.into()))
        .ok_or(AppError::NotFound("customer"))
}
