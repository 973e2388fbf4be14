//! API tokens: `POST /api/v1/tokens` (for the caller), `GET /api/v1/tokens`,
//! `GET /api/v1/tokens/{id}`, `DELETE /api/v1/tokens/{id}` (revoke). The plaintext
//! token is in the creation response only.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::accounts;
use crate::auth::AuthUser;
use crate::db::models::{now, ApiToken, User};
use crate::domain::{parse_duration, Role};
use crate::error::AppError;
use crate::handlers::utc;
use crate::ids::TokenId;
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

/// Parses an `expires_in` field.
pub fn parse_expiry(text: Option<&str>) -> Result<Option<std::time::Duration>, AppError> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| parse_duration(t).map_err(|e| AppError::invalid("expires_in", format!("expires_in: {e}"))))
        .transpose()
}

pub async fn create_token(
    state: web::Data<AppState>,
    caller: AuthUser,
    body: web::Json<CreateTokenRequest>,
) -> Result<HttpResponse, AppError> {
    let CreateTokenRequest { label, expires_in } = body.into_inner();
    let expires_in = parse_expiry(expires_in.as_deref())?;
    let owner = caller.user.clone();
    let (token, issued) = state
        .db
        .run(move |conn| accounts::issue_token(conn, &owner, &label, expires_in))
        .await?;
    tracing::info!(token.id = %token.id, user.id = %caller.user.id, "issued API token");
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
    let own = caller.user.id.clone();
    let tokens = state
        .db
        .run(move |conn| Ok(ApiToken::list(conn, Some(&own), None)?))
        .await?;
    Ok(web::Json(tokens.into_iter().map(TokenResponse::from).collect()))
}

/// Whether `caller` may see and revoke a token of `owner`: its own, any for a
/// vendor-admin, those of its own customer's users for a customer-admin.
fn may_manage(caller: &AuthUser, owner: &User) -> bool {
    owner.id == caller.user.id
        || match caller.role {
            Role::VendorAdmin => true,
            Role::CustomerAdmin => caller.scope.can_see(owner.customer_id.as_ref()),
            Role::VendorPublisher => false,
        }
}

async fn visible_token(state: &AppState, caller: &AuthUser, id: &str) -> Result<(ApiToken, User), AppError> {
    let id: TokenId = id.parse().map_err(|_| AppError::NotFound("token"))?;
    let found = state.db.run(move |conn| Ok(ApiToken::find(conn, &id)?)).await?;
    found
        .filter(|(_, owner)| may_manage(caller, owner))
        .ok_or(AppError::NotFound("token"))
}

pub async fn get_token(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<web::Json<TokenResponse>, AppError> {
    Ok(web::Json(visible_token(&state, &caller, &id).await?.into()))
}

pub async fn delete_token(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (token, _) = visible_token(&state, &caller, &id).await?;
    revoke(&state, &caller, token.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Revokes a token the caller may manage; 409 when it already was.
pub async fn revoke(state: &AppState, caller: &AuthUser, id: TokenId) -> Result<(), AppError> {
    let target = id.clone();
    let changed = state
        .db
        .run(move |conn| Ok(ApiToken::revoke(conn, &target, now())?))
        .await?;
    if changed == 0 {
        return Err(AppError::Conflict("the token is already revoked".into()));
    }
    tracing::info!(token.id = %id, by.user.id = %caller.user.id, "revoked API token");
    Ok(())
}
