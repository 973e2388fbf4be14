//! Users: `POST /api/v1/users`, `GET /api/v1/users`, `GET /api/v1/users/{id}`,
//! `DELETE /api/v1/users/{id}`. A vendor-admin manages every user; a customer-admin
//! manages the customer-admins of its own customer and sees no one else.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::db::models::user::UserWithCustomer;
use crate::db::models::utc;
use crate::domain::Role;
use crate::error::AppError;
use crate::ids::UserId;
use crate::services::users::{self, NewUserRequest};
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    pub role: String,
    pub customer: Option<String>,
}

#[derive(Serialize)]
pub struct UserResponse {
    pub id: UserId,
    pub email: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<UserWithCustomer> for UserResponse {
    fn from((user, customer): UserWithCustomer) -> Self {
        UserResponse {
            role: user.role,
            id: user.id,
            email: user.email,
            customer,
            created_at: utc(user.created_at),
        }
    }
}

pub async fn create_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, AppError> {
    let CreateUserRequest {
        email,
        password,
        role,
        customer,
    } = body.into_inner();
    let request = NewUserRequest {
        email,
        password,
        role: role
            .parse()
            .map_err(|e: String| crate::services::ServiceError::invalid("role", e))?,
        customer,
    };
    let created = users::create(&state, &caller.caller(), request).await?;
    Ok(HttpResponse::Created().json(UserResponse::from(created)))
}

pub async fn list_users(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<web::Json<Vec<UserResponse>>, AppError> {
    let list = users::list(&state, &caller.caller()).await?;
    Ok(web::Json(list.into_iter().map(UserResponse::from).collect()))
}

pub async fn get_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<web::Json<UserResponse>, AppError> {
    let user = users::visible(&state, &caller.caller(), &id).await?;
    Ok(web::Json(user.into()))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    users::delete(&state, &caller.caller(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
