//! `GET /api/v1/me`: who the caller is.

use actix_web::web;
use serde::Serialize;

use crate::auth::AuthUser;
use crate::db::models::Customer;
use crate::domain::Role;
use crate::error::AppError;
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
    let customer = match caller.scope.customer().cloned() {
        None => None,
        Some(id) => state
            .db
            .query(move |conn| Customer::find(conn, &id))
            .await?
            .map(|c| c.slug),
    };
    Ok(web::Json(MeResponse {
        kind: "user",
        email: caller.user.email,
        role: caller.role,
        customer,
    }))
}
