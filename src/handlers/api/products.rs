//! Products: `POST /api/v1/products` (vendor) and `GET /api/v1/products` (public).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::VendorUser;
use crate::db::models::utc;
use crate::db::models::Product;
use crate::error::AppError;
use crate::services::tenants;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProductRequest {
    pub slug: String,
    pub name: String,
    pub version_scheme: String,
}

#[derive(Serialize)]
pub struct ProductResponse {
    pub slug: String,
    pub name: String,
    pub version_scheme: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<Product> for ProductResponse {
    fn from(p: Product) -> Self {
        ProductResponse {
            slug: p.slug,
            name: p.name,
            version_scheme: p.version_scheme.as_str().to_owned(),
            created_at: utc(p.created_at),
        }
    }
}

pub async fn create_product(
    state: web::Data<AppState>,
    caller: VendorUser,
    body: web::Json<CreateProductRequest>,
) -> Result<HttpResponse, AppError> {
    let CreateProductRequest {
        slug,
        name,
        version_scheme,
    } = body.into_inner();
    let product = tenants::create_product(&state, &caller.0.caller(), &slug, &name, &version_scheme).await?;
    Ok(HttpResponse::Created().json(ProductResponse::from(product)))
}

pub async fn list_products(state: web::Data<AppState>) -> Result<web::Json<Vec<ProductResponse>>, AppError> {
    let products = tenants::products(&state).await?;
    Ok(web::Json(products.into_iter().map(ProductResponse::from).collect()))
}
