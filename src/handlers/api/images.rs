//! Release image hashes of a product: `POST /api/v1/products/{slug}/images`
//! `{"version","image_sha256","platform"?}` and `GET` (the vendor).

use actix_web::{web, HttpResponse};

use crate::api::events::{ImageDraft, ImageList, ImageResponse};
use crate::auth::VendorUser;
use crate::error::AppError;
use crate::services::images;
use crate::state::AppState;

pub async fn create_image(
    state: web::Data<AppState>,
    caller: VendorUser,
    slug: web::Path<String>,
    body: web::Json<ImageDraft>,
) -> Result<HttpResponse, AppError> {
    let (image, new) = images::register(&state, &caller.0.caller(), slug.into_inner(), body.into_inner()).await?;
    let body = ImageResponse::from(&image);
    Ok(if new {
        HttpResponse::Created().json(body)
    } else {
        HttpResponse::Ok().json(body)
    })
}

pub async fn list_images(
    state: web::Data<AppState>,
    _caller: VendorUser,
    slug: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let images = images::list(&state, slug.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ImageList {
        images: images.iter().map(ImageResponse::from).collect(),
    }))
}
