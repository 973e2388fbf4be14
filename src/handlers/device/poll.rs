//! `POST /api/v1/device/poll`: the update the device should install, if any, and
//! when to ask again. Nothing here waits on the database.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::api::fleet::PollRequest;
use crate::auth::Device;
use crate::error::AppError;
use crate::services::fleet::poll;
use crate::state::AppState;

pub async fn poll_device(
    state: web::Data<AppState>,
    device: Device,
    body: web::Json<PollRequest>,
) -> Result<HttpResponse, AppError> {
    let answer = poll::poll(&state, &device.0, &body).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer.response()))
}
