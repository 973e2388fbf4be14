//! HTML pages rendered with the embedded tera templates, and [`PageError`], which
//! answers a failed page with an HTML error page (or a redirect to the login form)
//! instead of the API's JSON.

pub mod account;
pub mod advisories;
pub mod advisory_form;
pub mod home;
pub mod login;
pub mod patches;
pub mod vendor;

use std::fmt;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;
use tera::Context;

use crate::auth::AuthUser;
use crate::db::models::Product;
use crate::error::AppError;
use crate::state::AppState;
use crate::templates::Templates;

/// A page that could not be served, already rendered.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    body: String,
    redirect_to: Option<&'static str>,
    retry_after: Option<String>,
}

impl PageError {
    /// Renders `err` with the templates registered on the request's app.
    pub fn new(req: &HttpRequest, err: AppError) -> Self {
        let state = req.app_data::<web::Data<AppState>>();
        Self::render(state.map(|s| &s.templates), err)
    }

    pub fn with_state(state: &AppState, err: AppError) -> Self {
        Self::render(Some(&state.templates), err)
    }

    fn render(templates: Option<&Templates>, err: AppError) -> Self {
        let status = err.status_code();
        if let AppError::Unauthorized(_) = err {
            return PageError {
                status: StatusCode::SEE_OTHER,
                body: String::new(),
                redirect_to: Some("/login"),
                retry_after: None,
            };
        }
        err.log();
        let retry_after = err.retry_after().map(|secs| secs.to_string());
        let mut context = Context::new();
        context.insert("status", &status.as_u16());
        context.insert("title", status.canonical_reason().unwrap_or("Error"));
        context.insert("message", &err.to_string());
        let rendered = templates.map(|t| t.render("error.html", &context));
        let body = match rendered {
            Some(Ok(html)) => html,
            Some(Err(render_err)) => {
                render_err.log();
                format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"))
            }
            None => format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error")),
        };
        PageError {
            status,
            body,
            redirect_to: None,
            retry_after,
        }
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "page error {}", self.status)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(location) = self.redirect_to {
            return response.insert_header((header::LOCATION, location)).finish();
        }
        if let Some(wait) = &self.retry_after {
            response.insert_header((header::RETRY_AFTER, wait.as_str()));
        }
        response
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(self.body.clone())
    }
}

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
        .map_err(|err| PageError::with_state(state, err))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(html))
}

/// Lets vendor staff through to the `screens` (named in the refusal) and no one else.
pub fn require_vendor(state: &AppState, user: &AuthUser, screens: &str) -> Result<(), PageError> {
    if user.role.is_vendor() {
        Ok(())
    } else {
        Err(PageError::with_state(
            state,
            AppError::forbidden(format!("the {screens} screens are for vendor staff")),
        ))
    }
}

/// Sorts out a failed form action: input errors and conflicts go back onto the form,
/// with their status and message; anything else becomes an error page.
pub fn form_error(state: &AppState, err: AppError) -> Result<(StatusCode, String), PageError> {
    match err {
        AppError::Invalid { .. } | AppError::Conflict(_) => Ok((err.status_code(), err.to_string())),
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
