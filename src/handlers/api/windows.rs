//! Maintenance windows and the emergency policy over the API: a customer admin's,
//! for its own fleet.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::CustomerAdmin;
use crate::domain::window::WindowInput;
use crate::error::AppError;
use crate::services::windows::{self, WindowsView};
use crate::state::AppState;

/// `PUT /api/v1/emergency-policy`, and what it answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyPolicyBody {
    /// Patches fixing an emergency advisory install whatever the windows say.
    pub ignore_windows: bool,
}

/// `GET /api/v1/maintenance-windows`: the windows, as they are put.
pub async fn get_windows(state: web::Data<AppState>, caller: CustomerAdmin) -> Result<HttpResponse, AppError> {
    let view = windows::view(&state, &caller.0.caller()).await?;
    Ok(HttpResponse::Ok().json(view.windows))
}

/// `PUT /api/v1/maintenance-windows` `[{"labels"?, "schedule", "duration",
/// "time_zone", "max_concurrent"?}]`: replaces them all (`[]`: none).
pub async fn put_windows(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    body: web::Json<Vec<WindowInput>>,
) -> Result<HttpResponse, AppError> {
    let view = windows::replace(&state, &caller.0.caller(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view.windows))
}

/// `GET /api/v1/emergency-policy`.
pub async fn get_emergency_policy(state: web::Data<AppState>, caller: CustomerAdmin) -> Result<HttpResponse, AppError> {
    let view = windows::view(&state, &caller.0.caller()).await?;
    Ok(HttpResponse::Ok().json(policy(&view)))
}

/// `PUT /api/v1/emergency-policy` `{"ignore_windows": bool}`.
pub async fn put_emergency_policy(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    body: web::Json<EmergencyPolicyBody>,
) -> Result<HttpResponse, AppError> {
    let view = windows::set_emergency_policy(&state, &caller.0.caller(), body.ignore_windows).await?;
    Ok(HttpResponse::Ok().json(policy(&view)))
}

fn policy(view: &WindowsView) -> EmergencyPolicyBody {
    EmergencyPolicyBody {
        ignore_windows: view.emergencies_ignore_windows,
    }
}
