//! `POST /api/v1/device/enroll`: a device enrols itself with an enrolment token.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::api::fleet::{EnrolledResponse, SelfEnrolment};
use crate::auth::client_ip;
use crate::error::AppError;
use crate::services::fleet::devices;
use crate::state::AppState;

pub async fn enroll_device(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SelfEnrolment>,
) -> Result<HttpResponse, AppError> {
    let address = client_ip(&req, state.config.client_address_hops);
    let enrolled = devices::enrol_with_token(&state, address, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(EnrolledResponse::of(&enrolled)?))
}
