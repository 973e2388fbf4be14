//! Products: `POST /api/v1/products` (vendor) and `GET /api/v1/products` (public).

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::VendorUser;
use crate::db::models::{now, NewProduct, Product};
use crate::domain::version::VersionScheme;
use crate::domain::Slug;
use crate::error::AppError;
use crate::http::utc;
use crate::ids::ProductId;
use crate::services::accounts::check_name;
use crate::services::error::is_unique_violation;
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
            version_scheme: p.version_scheme,
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
    let slug: Slug = slug
        .parse()
        .map_err(|e| AppError::invalid("slug", format!("slug {e}")))?;
    let name = check_name("name", &name, true)?;
    let scheme: VersionScheme = version_scheme
        .parse()
        .map_err(|e: String| AppError::invalid("version_scheme", e))?;
    let product = state
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
                    AppError::Conflict(format!("a product with slug `{slug}` already exists"))
                } else {
                    err.into()
                }
            })
        })
        .await?;
    tracing::info!(product.slug = %product.slug, user.id = %caller.0.user.id, "created product");
    Ok(HttpResponse::Created().json(ProductResponse::from(product)))
}

pub async fn list_products(state: web::Data<AppState>) -> Result<web::Json<Vec<ProductResponse>>, AppError> {
    let products = state.db.query(Product::list).await?;
    Ok(web::Json(products.into_iter().map(ProductResponse::from).collect()))
}
