//! `GET /api/v1/advisories/{id}/evidence`: the evidence bundle of an advisory for
//! the calling customer admin's customer, as a file to hand an auditor.

use actix_web::{web, HttpResponse};

use crate::auth::CustomerAdmin;
use crate::error::AppError;
use crate::services::evidence;
use crate::state::AppState;

pub async fn get_evidence(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (name, bytes) = evidence::for_caller(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("cache-control", "no-store"))
        .body(bytes))
}
