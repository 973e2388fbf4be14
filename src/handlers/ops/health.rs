//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is up and serving.
pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers, so requests can be served.
pub async fn get_readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let backend = state.ready().await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": backend})))
}
