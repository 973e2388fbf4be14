//! Enrolment tokens of the caller's customer: `POST /api/v1/enrollment-tokens` (the
//! token is in this answer only), `GET` the list, `DELETE …/{id}` to revoke.

use actix_web::{web, HttpResponse};

use crate::api::fleet::{EnrollmentTokenDraft, EnrollmentTokenResponse};
use crate::auth::CustomerAdmin;
use crate::error::AppError;
use crate::http::extract::optional_json;
use crate::services::fleet::devices;
use crate::state::AppState;

pub async fn create_enrollment_token(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let draft: EnrollmentTokenDraft = optional_json(&body)?.unwrap_or_default();
    let (token, issued) = devices::create_enrollment_token(&state, &caller.0.caller(), draft).await?;
    Ok(HttpResponse::Created().json(EnrollmentTokenResponse::of(&token, Some(issued.plaintext()))))
}

pub async fn list_enrollment_tokens(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
) -> Result<HttpResponse, AppError> {
    let tokens = devices::enrollment_tokens(&state, &caller.0.caller()).await?;
    let body: Vec<EnrollmentTokenResponse> = tokens.iter().map(|t| EnrollmentTokenResponse::of(t, None)).collect();
    Ok(HttpResponse::Ok().json(body))
}

pub async fn delete_enrollment_token(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    devices::revoke_enrollment_token(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
