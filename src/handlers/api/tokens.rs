//! API tokens: `POST /api/v1/tokens` (for the caller), `GET /api/v1/tokens`,
//! `GET /api/v1/tokens/{id}`, `DELETE /api/v1/tokens/{id}` (revoke). The plaintext
//! token is in the creation response only.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::AuthUser;
use crate::db::models::utc;
use crate::db::models::{ApiToken, User};
use crate::error::AppError;
use crate::ids::TokenId;
use crate::services::accounts;
use crate::state::AppState;

type Timestamp = chrono::DateTime<chrono::Utc>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[serde(default)]
    pub label: String,
    /// `30d`, `12h`, …; no expiry when absent.
    pub expires_in: Option<String>,
}

#[derive(Serialize)]
pub struct TokenResponse {
    pub id: TokenId,
    pub label: String,
    pub user: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl From<(ApiToken, User)> for TokenResponse {
    fn from((token, user): (ApiToken, User)) -> Self {
        TokenResponse {
            id: token.id,
            label: token.label,
            user: user.email,
            created_at: utc(token.created_at),
            expires_at: token.expires_at.map(utc),
            revoked_at: token.revoked_at.map(utc),
            last_used_at: token.last_used_at.map(utc),
        }
    }
}

#[derive(Serialize)]
pub struct CreatedTokenResponse {
    #[serde(flatten)]
    pub token: TokenResponse,
    /// The bearer token; shown this once.
    #[serde(rename = "token")]
    pub token_value: String,
}

pub async fn create_token(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: web::Json<CreateTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let CreateTokenRequest { label, expires_in } = body.into_inner();
    let expires_in = accounts::parse_expiry(expires_in.as_deref())?;
    let (token, issued) = accounts::create_token(&state, &caller.user, label, expires_in).await?;
    Ok(HttpResponse::Created()
        .insert_header(("cache-control", "no-store"))
        .json(CreatedTokenResponse {
            token: (token, caller.user).into(),
            token_value: issued.plaintext().to_owned(),
        }))
}

pub async fn list_tokens(
    state: web::Data<AppState>,
    caller: AuthUser,
) -> Result<web::Json<Vec<TokenResponse>>, AppError> {
    let tokens = accounts::tokens_of(&state, &caller.user.id).await?;
    Ok(web::Json(tokens.into_iter().map(TokenResponse::from).collect()))
}

pub async fn get_token(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<web::Json<TokenResponse>, AppError> {
    Ok(web::Json(
        accounts::visible_token(&state, &caller.caller(), &id).await?.into(),
    ))
}

pub async fn delete_token(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    accounts::revoke_token(&state, &caller.caller(), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
