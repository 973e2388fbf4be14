//! Web login and logout: `POST /api/v1/session` and `DELETE /api/v1/session`, and
//! the sign-in steps the HTML login form shares with them.

use std::net::IpAddr;

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::accounts::{self, OpenedSession};
use crate::auth::{client_ip, AuthUser, Credential, SESSION_COOKIE};
use crate::config::Config;
use crate::db::models::{Customer, Session, User};
use crate::domain::Role;
use crate::error::AppError;
use crate::handlers::utc;
use crate::secrets::verify_password;
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

/// Checks the rate limit and the password, then opens a session. Every failure of
/// the password check reads the same, whether or not the account exists.
pub async fn sign_in(
    state: &AppState,
    address: IpAddr,
    email: &str,
    password: String,
) -> Result<(User, OpenedSession), AppError> {
    state.login_limiter.check(address, email.trim())?;
    let email = email.trim().to_lowercase();
    let user = state.db.run(move |conn| Ok(User::find_by_email(conn, &email)?)).await?;
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let verified = web::block(move || verify_password(&password, stored.as_deref())).await?;
    let user = match (verified, user) {
        (true, Some(user)) => user,
        _ => {
            tracing::warn!(client.address = %address, "failed login");
            return Err(AppError::Unauthorized("wrong e-mail or password".into()));
        }
    };
    let ttl = state.config.session_ttl;
    let owner = user.clone();
    let opened = state
        .db
        .run(move |conn| accounts::open_session(conn, &owner, ttl))
        .await?;
    tracing::info!(user.id = %user.id, client.address = %address, "signed in");
    Ok((user, opened))
}

/// The session cookie: HttpOnly, SameSite=Strict, Secure when served over TLS.
pub fn session_cookie(config: &Config, opened: &OpenedSession) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, opened.cookie.plaintext().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies())
        .max_age(time::Duration::seconds(
            i64::try_from(config.session_ttl.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// A cookie that clears the session cookie.
pub fn session_removal_cookie(config: &Config) -> Cookie<'static> {
    let mut cookie = Cookie::build(SESSION_COOKIE, "")
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies())
        .finish();
    cookie.make_removal();
    cookie
}

/// Ends the caller's session, if it came in with one.
pub async fn end_session(state: &AppState, caller: &AuthUser) -> Result<(), AppError> {
    if let Credential::Session { id, .. } = &caller.credential {
        let id = id.clone();
        state.db.run(move |conn| Ok(Session::delete(conn, &id)?)).await?;
        tracing::info!(user.id = %caller.user.id, "signed out");
    }
    Ok(())
}

/// `POST /api/v1/session`
pub async fn create_session(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, AppError> {
    let address = client_ip(&req, state.config.trust_proxy_headers);
    let LoginRequest { email, password } = body.into_inner();
    let (user, opened) = sign_in(&state, address, &email, password).await?;
    let customer = match user.customer_id.clone() {
        None => None,
        Some(id) => state
            .db
            .run(move |conn| Ok(Customer::find(conn, &id)?))
            .await?
            .map(|c| c.slug),
    };
    let body = SessionResponse {
        kind: "user",
        role: user.role(),
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
