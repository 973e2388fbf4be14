//! `GET /api/v1/advisories/{id}/vex`: the calling customer admin's CSAF VEX of a
//! published advisory, for its own fleet.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::auth::CustomerAdmin;
use crate::error::AppError;
use crate::services::fleet::exposure;
use crate::state::AppState;

pub async fn get_vex(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let document = exposure::vex(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(document.to_string()))
}
