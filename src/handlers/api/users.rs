//! Users: `POST /api/v1/users`, `GET /api/v1/users`, `GET /api/v1/users/{id}`,
//! `DELETE /api/v1/users/{id}`. A vendor-admin manages every user; a customer-admin
//! manages the customer-admins of its own customer and sees no one else.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::db::models::user::UserWithCustomer;
use crate::db::models::{Customer, User};
use crate::domain::Role;
use crate::domain::Scope;
use crate::error::AppError;
use crate::http::utc;
use crate::ids::UserId;
use crate::services::accounts::{self, UserDraft};
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

/// Only admins manage users; publishers do not.
fn require_admin(caller: &AuthUser) -> Result<(), AppError> {
    match caller.role {
        Role::VendorAdmin | Role::CustomerAdmin => Ok(()),
        Role::VendorPublisher => Err(AppError::forbidden("managing users needs an admin role")),
    }
}

pub async fn create_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: web::Json<CreateUserRequest>,
) -> Result<HttpResponse, AppError> {
    require_admin(&caller)?;
    let CreateUserRequest {
        email,
        password,
        role,
        customer,
    } = body.into_inner();
    let customer = match &caller.scope {
        Scope::Vendor => customer,
        Scope::Customer(own) => {
            let own = own.clone();
            let own_slug = state
                .db
                .query(move |conn| Customer::find(conn, &own))
                .await?
                .map(|c| c.slug)
                .ok_or(AppError::NotFound("customer"))?;
            if role != Role::CustomerAdmin.as_str() {
                return Err(AppError::forbidden("a customer-admin can only add customer-admins"));
            }
            if customer.as_deref().is_some_and(|slug| slug != own_slug) {
                return Err(AppError::invalid(
                    "customer",
                    "you can only add users to your own customer",
                ));
            }
            Some(own_slug)
        }
    };
    let draft = web::block(move || UserDraft::new(&email, password, &role, customer)).await??;
    let created = state
        .db
        .run(move |conn| {
            let user = accounts::create_user(conn, &draft)?;
            Ok::<_, crate::services::ServiceError>(
                User::find_with_customer(conn, &user.id)?.unwrap_or((user, draft.customer_slug)),
            )
        })
        .await?;
    tracing::info!(user.id = %created.0.id, by.user.id = %caller.user.id, "created user");
    Ok(HttpResponse::Created().json(UserResponse::from(created)))
}

pub async fn list_users(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<web::Json<Vec<UserResponse>>, AppError> {
    require_admin(&caller)?;
    let scope = caller.scope.clone();
    let users = state
        .db
        .query(move |conn| User::list_with_customer(conn, scope.customer()))
        .await?;
    Ok(web::Json(users.into_iter().map(UserResponse::from).collect()))
}

/// The user `id` if the caller may see it: itself, or any user in its scope when
/// the caller is an admin.
async fn visible_user(state: &AppState, caller: &AuthUser, id: &str) -> Result<UserWithCustomer, AppError> {
    let id: UserId = id.parse().map_err(|_| AppError::NotFound("user"))?;
    let found = state.db.query(move |conn| User::find_with_customer(conn, &id)).await?;
    found
        .filter(|(user, _)| {
            user.id == caller.user.id
                || (require_admin(caller).is_ok() && caller.scope.can_see(user.customer_id.as_ref()))
        })
        .ok_or(AppError::NotFound("user"))
}

pub async fn get_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<web::Json<UserResponse>, AppError> {
    let user = visible_user(&state, &caller, &id).await?;
    Ok(web::Json(user.into()))
}

pub async fn delete_user(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (user, _) = visible_user(&state, &caller, &id).await?;
    require_admin(&caller)?;
    if user.id == caller.user.id {
        return Err(AppError::Conflict("you cannot delete your own account".into()));
    }
    let id = user.id.clone();
    state.db.query(move |conn| User::delete(conn, &id)).await?;
    tracing::info!(user.id = %user.id, by.user.id = %caller.user.id, "deleted user");
    Ok(HttpResponse::NoContent().finish())
}
