//! Web login and logout: `POST /api/v1/session` and `DELETE /api/v1/session`, and
//! the sign-in steps the HTML login form shares with them.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{client_ip, AuthUser, Credential};
use crate::db::models::utc;
use crate::domain::Role;
use crate::error::AppError;
use crate::http::cookies::{session_cookie, session_removal_cookie};
use crate::services::accounts;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize)]
pub struct SessionResponse {
    pub kind: &'static str,
    pub email: String,
    pub role: Role,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// Send this as `X-CSRF-Token` on writes made with the session cookie.
    pub csrf_token: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Ends the caller's session, if it came in with one.
pub async fn end_session(state: &AppState, caller: &AuthUser) -> Result<(), AppError> {
    if let Credential::Session { id, .. } = &caller.credential {
        accounts::end_session(state, &caller.caller(), id.clone()).await?;
    }
    Ok(())
}

/// `POST /api/v1/session`
pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let address = client_ip(&req, state.config.client_address_hops);
    let LoginRequest { email, password } = body.into_inner();
    let accounts::SignedIn { user, customer, opened } = accounts::sign_in(&state, address, &email, password).await?;
    let body = SessionResponse {
        kind: "user",
        role: user.role,
        email: user.email,
        customer,
        csrf_token: opened.csrf_token.clone(),
        expires_at: utc(opened.expires_at),
    };
    Ok(HttpResponse::Created()
        .cookie(session_cookie(&state.config, &opened))
        .insert_header(("cache-control", "no-store"))
        .json(body))
}

/// `DELETE /api/v1/session`
pub async fn delete_session(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, AppError> {
    end_session(&state, &caller).await?;
    Ok(HttpResponse::NoContent()
        .cookie(session_removal_cookie(&state.config))
        .finish())
}
