//! Enrolment tokens: the list, making one (shown once) and revoking one.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::page_error;
use crate::api::fleet::{EnrollmentTokenDraft, EnrollmentTokenResponse};
use crate::auth::{AuthUser, CsrfForm, CustomerAdminForm, WebCustomer};
use crate::error::PageError;
use crate::http::pages::{context, form_error, render, see_other, NoFields};
use crate::services::fleet::devices;
use crate::services::ServiceError;
use crate::state::AppState;

/// The enrolment-token form.
#[derive(Deserialize, Serialize, Default)]
pub struct TokenForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    max_uses: String,
    #[serde(default)]
    expires_in: String,
}

async fn tokens_page(
    state: &AppState,
    user: &AuthUser,
    status: StatusCode,
    form: &TokenForm,
    error: Option<&str>,
    created: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let tokens = devices::enrollment_tokens(state, &user.caller())
        .await
        .map_err(|e| page_error(state, e))?;
    let rows: Vec<EnrollmentTokenResponse> = tokens.iter().map(|t| EnrollmentTokenResponse::of(t, None)).collect();
    let mut page = context(Some(user));
    page.insert("tokens", &rows);
    page.insert("form", form);
    page.insert("error", &error);
    page.insert("created", &created);
    render(state, status, "fleet_tokens.html", &page)
}

/// `GET /fleet/enrollment-tokens`
pub async fn get_tokens(state: web::Data<AppState>, user: WebCustomer) -> Result<HttpResponse, PageError> {
    tokens_page(&state, &user.0, StatusCode::OK, &TokenForm::default(), None, None).await
}

/// `POST /fleet/enrollment-tokens`: creates a token; the answer shows it once.
pub async fn post_token(
    state: web::Data<AppState>,
    form: CustomerAdminForm<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let CsrfForm { user, fields, .. } = form;
    let max_uses = match fields.max_uses.trim() {
        "" => Ok(None),
        text => text
            .parse::<i32>()
            .map(Some)
            .map_err(|_| ServiceError::invalid("max_uses", "max_uses must be a whole number")),
    };
    let created = match max_uses {
        Ok(max_uses) => {
            let draft = EnrollmentTokenDraft {
                label: Some(fields.label.clone()),
                max_uses,
                expires_in: Some(fields.expires_in.trim().to_owned()).filter(|s| !s.is_empty()),
            };
            devices::create_enrollment_token(&state, &user.caller(), draft).await
        }
        Err(err) => Err(err),
    };
    match created {
        Ok((_, issued)) => {
            tokens_page(
                &state,
                &user,
                StatusCode::CREATED,
                &TokenForm::default(),
                None,
                Some(issued.plaintext()),
            )
            .await
        }
        Err(err) => {
            let (status, message) = form_error(&state, err)?;
            tokens_page(&state, &user, status, &fields, Some(&message), None).await
        }
    }
}

/// `POST /fleet/enrollment-tokens/{id}/revoke`
pub async fn post_token_revoke(
    state: web::Data<AppState>,
    form: CustomerAdminForm<NoFields>,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    devices::revoke_enrollment_token(&state, &form.user.caller(), id.into_inner())
        .await
        .map_err(|e| page_error(&state, e))?;
    Ok(see_other("/fleet/enrollment-tokens"))
}
