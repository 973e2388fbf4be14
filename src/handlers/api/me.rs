//! `GET /api/v1/me`: who the caller is.

use actix_web::web;
use serde::Serialize;

use crate::auth::Someone;
use crate::domain::Role;
use crate::error::AppError;
use crate::services::fleet::device_reads;
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
    let me = match caller {
        Someone::User(user) => {
            let customer = match user.scope.customer() {
                None => None,
                Some(id) => Some(users::customer_slug(&state, id).await?),
            };
            MeResponse {
                kind: "user",
                email: Some(user.user.email),
                role: Some(user.role),
                customer,
                id: None,
                name: None,
            }
        }
        Someone::Device(device) => {
            let (name, customer) = device_reads::identity(&state, &device).await?;
            MeResponse {
                kind: "device",
                email: None,
                role: None,
                customer: Some(customer),
                id: Some(device.id().to_string()),
                name: Some(name),
            }
        }
    };
    Ok(web::Json(me))
}
