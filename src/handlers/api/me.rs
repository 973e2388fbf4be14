//! `GET /api/v1/me`: who the caller is.

use actix_web::web;
use serde::Serialize;

use crate::auth::Someone;
use crate::domain::Role;
use crate::error::AppError;
use crate::services::users;
use crate::state::AppState;

#[derive(Serialize)]
pub struct MeResponse {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// A device's id and name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

pub async fn get_me(state: web::Data<AppState>, caller: Someone) -> Result<web::Json<MeResponse>, AppError> {
    let (customer, me) = match caller {
        Someone::User(user) => (
            user.scope.customer().cloned(),
            MeResponse {
                kind: "user",
                email: Some(user.user.email),
                role: Some(user.role),
                customer: None,
                id: None,
                name: None,
            },
        ),
        Someone::Device(device) => (
            Some((*device.customer).clone()),
            MeResponse {
                kind: "device",
                email: None,
                role: None,
                customer: None,
                id: Some(device.id.to_string()),
                name: Some(device.name.to_string()),
            },
        ),
    };
    let customer = match customer {
        None => None,
        Some(id) => Some(users::customer_slug(&state, &id).await?),
    };
    Ok(web::Json(MeResponse { customer, ..me }))
}
