//! `GET /api/v1/me`: who the caller is.

use actix_web::web;
use serde::Serialize;

use crate::auth::AuthUser;
use crate::domain::Role;
use crate::error::AppError;
use crate::services::users;
use crate::state::AppState;

#[derive(Serialize)]
pub struct MeResponse {
    pub kind: &'static str,
    pub email: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
}

pub async fn get_me(state: web::Data<AppState>, caller: AuthUser) -> Result<web::Json<MeResponse>, AppError> {
    let customer = match caller.scope.customer() {
        None => None,
        Some(id) => Some(users::customer_slug(&state, id).await?),
    };
    Ok(web::Json(MeResponse {
        kind: "user",
        email: caller.user.email,
        role: caller.role,
        customer,
    }))
}
