//! Liveness and readiness probes.

use actix_web::{web, HttpResponse};
use diesel::connection::SimpleConnection;
use serde_json::json;

use crate::error::AppError;
use crate::state::AppState;

/// `GET /healthz`: the process is up and serving.
pub async fn get_healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers, so requests can be served.
pub async fn get_readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    state
        .db
        .run(|conn| {
            conn.batch_execute("SELECT 1")
                .map_err(|err| AppError::Unavailable(format!("database: {err}")))
        })
        .await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": state.db.url().backend_name()})))
}
