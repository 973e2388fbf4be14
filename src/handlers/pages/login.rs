//! The login form (`GET /login`, `POST /login`) and `POST /logout`. The login form
//! is protected against login CSRF with a double-submit cookie, as there is no
//! session yet to hold its token.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::auth::{client_ip, Credential, CsrfForm, MaybeWebUser};
use crate::config::Config;
use crate::error::AppError;
use crate::error::PageError;
use crate::http::cookies::{session_cookie, session_removal_cookie};
use crate::http::pages::{context, render, see_other, NoFields};
use crate::secrets::{constant_time_eq, random_hex};
use crate::services::accounts;
use crate::state::AppState;

/// The cookie that pairs with the login form's hidden CSRF field.
pub const LOGIN_CSRF_COOKIE: &str = "pw_login_csrf";

#[derive(Deserialize)]
pub struct LoginForm {
    pub email: String,
    pub password: String,
    pub csrf_token: String,
}

fn login_csrf_cookie(config: &Config, value: String) -> Cookie<'static> {
    Cookie::build(LOGIN_CSRF_COOKIE, value)
        .path("/login")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(config.secure_cookies())
        .max_age(time::Duration::hours(1))
        .finish()
}

fn login_page(
    state: &AppState,
    status: StatusCode,
    csrf_token: &str,
    email: &str,
    error: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let mut page = context(None);
    page.insert("csrf_token", csrf_token);
    page.insert("email", email);
    page.insert("error", &error);
    render(state, status, "login.html", &page)
}

pub async fn get_login(state: web::Data<AppState>, user: MaybeWebUser) -> Result<HttpResponse, PageError> {
    if user.0.is_some() {
        return Ok(see_other("/"));
    }
    let csrf_token = random_hex(32);
    let mut response = login_page(&state, StatusCode::OK, &csrf_token, "", None)?;
    response
        .add_cookie(&login_csrf_cookie(&state.config, csrf_token))
        .map_err(|err| PageError::with_state(&state, AppError::Internal(err.into())))?;
    Ok(response)
}

pub async fn post_login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let LoginForm {
        email,
        password,
        csrf_token,
    } = form.into_inner();
    let cookie = req.cookie(LOGIN_CSRF_COOKIE);
    let expected = cookie.as_ref().map_or("", |c| c.value());
    if expected.is_empty() || !constant_time_eq(&csrf_token, expected) {
        return Err(PageError::with_state(&state, AppError::csrf()));
    }
    let address = client_ip(&req, state.config.client_address_hops);
    match accounts::sign_in(&state, address, &email, password)
        .await
        .map_err(AppError::from)
    {
        Ok(accounts::SignedIn { opened, .. }) => {
            let mut clear = login_csrf_cookie(&state.config, String::new());
            clear.make_removal();
            Ok(HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/"))
                .cookie(session_cookie(&state.config, &opened))
                .cookie(clear)
                .finish())
        }
        Err(AppError::Unauthorized(message)) => {
            login_page(&state, StatusCode::UNAUTHORIZED, &csrf_token, &email, Some(&message))
        }
        Err(err @ AppError::RateLimited { .. }) => {
            let mut response = login_page(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                &csrf_token,
                &email,
                Some(&err.to_string()),
            )?;
            if let Some(wait) = err.retry_after() {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(wait));
            }
            Ok(response)
        }
        Err(err) => Err(PageError::with_state(&state, err)),
    }
}

pub async fn post_logout(state: web::Data<AppState>, form: CsrfForm<NoFields>) -> Result<HttpResponse, PageError> {
    if let Credential::Session { id, .. } = &form.user.credential {
        accounts::end_session(&state, &form.user.caller(), id.clone())
            .await
            .map_err(|err| PageError::with_state(&state, err))?;
    }
    let mut response = see_other("/login");
    response
        .add_cookie(&session_removal_cookie(&state.config))
        .map_err(|err| PageError::with_state(&state, AppError::Internal(err.into())))?;
    Ok(response)
}
