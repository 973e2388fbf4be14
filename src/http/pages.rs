//! What every HTML page shares: the base layout's context, rendering, the answer to
//! a failed form, and the redirect after a post.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tera::Context;

use crate::auth::AuthUser;
use crate::db::models::Product;
use crate::error::{AppError, PageError};
use crate::state::AppState;

/// What the base layout shows of the signed-in user.
#[derive(Serialize)]
struct UserView<'a> {
    email: &'a str,
    role: &'a str,
    csrf_token: &'a str,
}

/// A template context with the signed-in user (if any) for the base layout.
pub fn context(user: Option<&AuthUser>) -> Context {
    let mut context = Context::new();
    if let Some(user) = user {
        context.insert(
            "user",
            &UserView {
                email: &user.user.email,
                role: user.role.as_str(),
                csrf_token: user.csrf_token().unwrap_or(""),
            },
        );
    }
    context
}

/// Renders a page with `status`; pages are never cached, as they may hold user data.
pub fn render(state: &AppState, status: StatusCode, name: &str, context: &Context) -> Result<HttpResponse, PageError> {
    let html = state
        .templates
        .render(name, context)
        .map_err(|err| PageError::with_state(state, AppError::from(err)))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

/// Sorts out a failed form action: input errors and conflicts go back onto the form,
/// with their status and message; anything else becomes an error page.
pub fn form_error(state: &AppState, err: impl Into<AppError>) -> Result<(StatusCode, String), PageError> {
    match err.into() {
        err @ (AppError::Invalid { .. } | AppError::Conflict(_)) => Ok((err.status_code(), err.to_string())),
        other => Err(PageError::with_state(state, other)),
    }
}

/// Products as (slug, name) pairs for a form's choices.
pub fn product_options(products: &[Product]) -> Vec<(String, String)> {
    products.iter().map(|p| (p.slug.clone(), p.name.clone())).collect()
}

/// A redirect after a form post.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A form with no fields but its CSRF token.
#[derive(serde::Deserialize)]
pub struct NoFields {}
