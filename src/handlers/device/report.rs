//! `POST /api/v1/device/report`: one install step of a patch the device was offered.

use actix_web::{web, HttpResponse};

use crate::api::fleet::{ReportRequest, ReportResponse};
use crate::auth::Device;
use crate::error::AppError;
use crate::services::fleet::poll;
use crate::state::AppState;

pub async fn report_install(
    state: web::Data<AppState>,
    device: Device,
    body: web::Json<ReportRequest>,
) -> Result<HttpResponse, AppError> {
    let report = poll::report(&state, &device.0, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(ReportResponse::of(&report, None)))
}
