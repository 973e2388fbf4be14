//! `GET /account`: the signed-in user's API tokens, with forms to create one (shown
//! once) and to revoke one.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::accounts;
use crate::auth::{AuthUser, CsrfForm, WebUser};
use crate::db::models::{now, ApiToken};
use crate::error::AppError;
use crate::handlers::pages::login::NoFields;
use crate::handlers::pages::{context, render, see_other, PageError};
use crate::handlers::tokens::{parse_expiry, revoke};
use crate::ids::TokenId;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NewTokenForm {
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub expires_in: String,
}

#[derive(Serialize)]
struct TokenRow {
    id: String,
    label: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    state: &'static str,
}

fn stamp(at: chrono::NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn account_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    new_token: Option<&str>,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let own = user.user.id.clone();
    let tokens = state
        .db
        .run(move |conn| Ok(ApiToken::list(conn, Some(&own), None)?))
        .await
        .map_err(|err| PageError::with_state(state, err))?;
    let at = now();
    let rows: Vec<TokenRow> = tokens
        .into_iter()
        .map(|(token, _)| TokenRow {
            state: if token.revoked_at.is_some() {
                "revoked"
            } else if token.is_active(at) {
                "active"
            } else {
                "expired"
            },
            id: token.id.to_string(),
            label: token.label,
            created_at: stamp(token.created_at),
            expires_at: token.expires_at.map(stamp),
            last_used_at: token.last_used_at.map(stamp),
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("tokens", &rows);
    page.insert("new_token", &new_token);
    page.insert("error", &error);
    render(state, status, "account.html", &page)
}

pub async fn get_account(state: web::Data<AppState>, user: WebUser) -> Result<HttpResponse, PageError> {
    account_page(&state, &user.0, StatusCode::OK, None, None).await
}

pub async fn post_account_token(
    state: web::Data<AppState>,
    form: CsrfForm<NewTokenForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields } = form;
    let expires_in = match parse_expiry(Some(&fields.expires_in)) {
        Ok(expiry) => expiry,
        Err(err) => {
            return account_page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&err.to_string()),
            )
            .await
        }
    };
    let owner = user.user.clone();
    let label = fields.label;
    let issued = state
        .db
        .run(move |conn| accounts::issue_token(conn, &owner, &label, expires_in))
        .await;
    match issued {
        Ok((token, issued)) => {
            tracing::info!(token.id = %token.id, user.id = %user.user.id, "issued API token");
            account_page(&state, &user, StatusCode::CREATED, Some(issued.plaintext()), None).await
        }
        Err(err @ AppError::Invalid { .. }) => {
            account_page(
                &state,
                &user,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                Some(&err.to_string()),
            )
            .await
        }
        Err(err) => Err(PageError::with_state(&state, err)),
    }
}

pub async fn post_account_token_revoke(
    state: web::Data<AppState>,
    id: web::Path<String>,
    form: CsrfForm<NoFields>,
) -> Result<HttpResponse, PageError> {
    let user = form.user;
    let not_found = || PageError::with_state(&state, AppError::NotFound("token"));
    let id: TokenId = id.parse().map_err(|_| not_found())?;
    let lookup = id.clone();
    let found = state
        .db
        .run(move |conn| Ok(ApiToken::find(conn, &lookup)?))
        .await
        .map_err(|err| PageError::with_state(&state, err))?;
    match found {
        Some((token, owner)) if owner.id == user.user.id => {
            if token.revoked_at.is_none() {
                revoke(&state, &user, id)
                    .await
                    .map_err(|err| PageError::with_state(&state, err))?;
            }
            Ok(see_other("/account"))
        }
        _ => Err(not_found()),
    }
}
