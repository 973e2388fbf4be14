//! `GET /metrics` in the Prometheus text format.

use actix_web::{web, HttpResponse};

use crate::error::AppError;
use crate::state::AppState;

pub async fn get_metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let text = state
        .metrics
        .render(&state.services)
        .map_err(|err| AppError::Internal(anyhow::Error::new(err).context("rendering metrics")))?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(text))
}
