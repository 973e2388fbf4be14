//! Rollouts over the API: the vendor plans one for a patch, reads it, and starts,
//! pauses, resumes, advances or cancels it with a reason; a customer admin sees
//! where its own devices are and holds them back or takes them all in.

use actix_web::{web, HttpResponse};

use crate::api::rollouts::{CustomerInput, CustomerRolloutResponse, RolloutCommand, RolloutPlan, RolloutResponse};
use crate::auth::{CustomerAdmin, VendorUser};
use crate::error::AppError;
use crate::http::extract::optional_json;
use crate::services::rollouts::{self, Command};
use crate::state::AppState;

/// `POST /api/v1/patches/{id}/rollouts`: a rollout in draft; from now on the patch
/// is offered only as the rollout says.
pub async fn create_rollout(
    state: web::Data<AppState>,
    caller: VendorUser,
    patch: web::Path<String>,
    body: web::Json<RolloutPlan>,
) -> Result<HttpResponse, AppError> {
    let view = rollouts::create(&state, &caller.0.caller(), patch.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(RolloutResponse::of(view)))
}

/// `GET /api/v1/patches/{id}/rollouts`: the patch's rollouts, newest first.
pub async fn list_rollouts(
    state: web::Data<AppState>,
    _caller: VendorUser,
    patch: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let views = rollouts::of_patch(&state, patch.into_inner()).await?;
    let body: Vec<RolloutResponse> = views.into_iter().map(RolloutResponse::of).collect();
    Ok(HttpResponse::Ok().json(body))
}

/// `GET /api/v1/rollouts/{id}`: state, waves with their counts, history.
pub async fn get_rollout(
    state: web::Data<AppState>,
    _caller: VendorUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let view = rollouts::view(&state, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(RolloutResponse::of(view)))
}

async fn command(
    state: &AppState,
    caller: &VendorUser,
    id: String,
    body: &[u8],
    command: Command,
) -> Result<HttpResponse, AppError> {
    let input = optional_json::<RolloutCommand>(body)?.unwrap_or_default();
    let view = rollouts::act(state, &caller.0.caller(), id, command, input.reason, input.patch_id).await?;
    Ok(HttpResponse::Ok().json(RolloutResponse::of(view)))
}

/// `POST /api/v1/rollouts/{id}/start`: opens the first wave.
pub async fn start_rollout(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    command(&state, &caller, id.into_inner(), &body, Command::Start).await
}

/// `POST /api/v1/rollouts/{id}/pause`: no device is offered the patch anew.
pub async fn pause_rollout(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    command(&state, &caller, id.into_inner(), &body, Command::Pause).await
}

/// `POST /api/v1/rollouts/{id}/resume`: running again, in the wave it paused in.
pub async fn resume_rollout(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    command(&state, &caller, id.into_inner(), &body, Command::Resume).await
}

/// `POST /api/v1/rollouts/{id}/advance`: opens the next wave (or finishes after the last).
pub async fn advance_rollout(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    command(&state, &caller, id.into_inner(), &body, Command::Advance).await
}

/// `POST /api/v1/rollouts/{id}/cancel`: no device is offered the patch anew, for good.
pub async fn cancel_rollout(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    command(&state, &caller, id.into_inner(), &body, Command::Cancel).await
}

/// `GET /api/v1/rollouts/{id}/customer`: the rollout as the caller's customer sees it.
pub async fn get_customer_rollout(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let view = rollouts::customer_view(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(CustomerRolloutResponse::of(view)))
}

/// `PUT /api/v1/rollouts/{id}/customer` `{"hold", "accelerate"?}`: the customer's
/// own devices held back, released, or taken in all at once.
pub async fn put_customer_rollout(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
    body: web::Json<CustomerInput>,
) -> Result<HttpResponse, AppError> {
    let view = rollouts::choose(&state, &caller.0.caller(), id.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(CustomerRolloutResponse::of(view)))
}
