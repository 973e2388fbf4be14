//! `GET /account`: the signed-in user's API tokens, with forms to create one (shown
//! once) and to revoke one.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::{AuthUser, CsrfForm, WebUser};
use crate::db::models::now;
use crate::error::AppError;
use crate::error::PageError;
use crate::http::pages::NoFields;
use crate::http::pages::{context, render, see_other};
use crate::services::accounts;
use crate::services::ServiceError;
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
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

async fn account_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    new_token: Option<&str>,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let tokens = accounts::tokens_of(state, &user.user.id)
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
    let CsrfForm { user, fields, .. } = form;
    let expires_in = match accounts::parse_expiry(Some(&fields.expires_in)) {
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
    match accounts::create_token(&state, &user.user, fields.label, expires_in).await {
        Ok((_, issued)) => account_page(&state, &user, StatusCode::CREATED, Some(issued.plaintext()), None).await,
        Err(err @ ServiceError::Invalid { .. }) => {
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
    // Only the user's own tokens are revoked here; another's is not found.
    let (token, owner) = accounts::visible_token(&state, &user.caller(), &id)
        .await
        .map_err(|err| PageError::with_state(&state, err))?;
    if owner.id != user.user.id {
        return Err(PageError::with_state(&state, AppError::NotFound("token")));
    }
    if token.revoked_at.is_none() {
        accounts::revoke_token(&state, &user.caller(), token.id.as_str())
            .await
            .map_err(|err| PageError::with_state(&state, err))?;
    }
    Ok(see_other("/account"))
}
