//! The errors of the HTTP layer: [`AppError`], with its status per variant and its
//! JSON body (`{"error": {"code", "message", "field"?}}`), and [`PageError`], the same
//! failure rendered as an HTML page (or a redirect to the login form). A service's
//! [`ServiceError`] becomes an `AppError` here, in one place. Server-side failures are
//! logged once, where the response is made, and answered with a generic message:
//! causes never reach the client.

use std::fmt;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Serialize;

use crate::db::RunError;
use crate::services::ServiceError;
use crate::state::AppState;
use crate::templates::Templates;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request could not be read (malformed JSON, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials that are not valid (unknown, expired, revoked).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed; `code` says why (`forbidden`, `csrf_failed`).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// Absent, or not visible to the caller: the two are never told apart.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The thing existed but is withdrawn for good (a yanked patch's file).
    #[error("{0}")]
    Gone(String),
    /// The request clashes with the current state (duplicate slug, already revoked).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Well-formed but invalid input; `field` names the offending field when known.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    #[error("too many attempts; retry in {} s", retry_after_secs(*.retry_after))]
    RateLimited { retry_after: Duration },
    /// A dependency (the database) cannot be reached; the detail is logged only.
    #[error("service unavailable")]
    Unavailable(String),
    /// The database is known to be down: answered at once, with `Retry-After`.
    #[error("service unavailable: the database is down; retry shortly")]
    DatabaseDown { retry_after: Duration },
    /// A bug or an unexpected failure; the detail is logged only.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// A 422 for `field` with a message that names the problem.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }

    pub fn csrf() -> Self {
        AppError::Forbidden {
            code: "csrf_failed",
            message: "missing or invalid CSRF token".into(),
        }
    }

    /// Seconds to wait before trying again, for a rate-limited request.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::RateLimited { retry_after } | AppError::DatabaseDown { retry_after } => {
                Some(retry_after_secs(*retry_after).max(1))
            }
            AppError::Unavailable(_) => Some(1),
            _ => None,
        }
    }

    /// The machine-readable code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::Forbidden { code, .. } => code,
            AppError::NotFound(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Gone(_) => "gone",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Invalid { .. } => "invalid",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable(_) | AppError::DatabaseDown { .. } => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// Logs server-side failures; called once, where the error becomes a response.
    pub(crate) fn log(&self) {
        match self {
            AppError::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed")
            }
            AppError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "dependency unavailable")
            }
            _ => {}
        }
    }
}

fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) | AppError::DatabaseDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let field = match self {
            AppError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        if let Some(wait) = self.retry_after() {
            response.insert_header((header::RETRY_AFTER, wait.to_string()));
        }
        if let AppError::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        response.insert_header((header::CACHE_CONTROL, "no-store")).json(body)
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(err: diesel::result::Error) -> Self {
        AppError::Internal(err.into())
    }
}

impl From<diesel::r2d2::PoolError> for AppError {
    fn from(err: diesel::r2d2::PoolError) -> Self {
        AppError::Unavailable(format!("database pool: {err}"))
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(err: actix_web::error::BlockingError) -> Self {
        AppError::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

impl From<tera::Error> for AppError {
    fn from(err: tera::Error) -> Self {
        AppError::Internal(anyhow::Error::new(err).context("rendering a template"))
    }
}

impl From<ServiceError> for AppError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Malformed(message) => AppError::BadRequest(message),
            ServiceError::Unauthenticated(message) => AppError::Unauthorized(message),
            ServiceError::Forbidden(message) => AppError::forbidden(message),
            ServiceError::NotFound(what) => AppError::NotFound(what),
            ServiceError::Gone(message) => AppError::Gone(message),
            ServiceError::Conflict(message) => AppError::Conflict(message),
            ServiceError::OverCap(cap) => AppError::Conflict(cap.message()),
            ServiceError::TooLarge(message) => AppError::PayloadTooLarge(message),
            ServiceError::Invalid { field, message } => AppError::Invalid { field, message },
            ServiceError::RateLimited { retry_after } => AppError::RateLimited { retry_after },
            ServiceError::Unavailable(cause) => AppError::Unavailable(cause),
            ServiceError::Down { retry_after } => AppError::DatabaseDown { retry_after },
            ServiceError::Internal(cause) => AppError::Internal(cause),
        }
    }
}

impl From<RunError> for AppError {
    fn from(err: RunError) -> Self {
        ServiceError::from(err).into()
    }
}

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
    pub fn new(req: &HttpRequest, err: impl Into<AppError>) -> Self {
        let state = req.app_data::<web::Data<AppState>>();
        Self::render(state.map(|s| &s.templates), err.into())
    }

    pub fn with_state(state: &AppState, err: impl Into<AppError>) -> Self {
        Self::render(Some(&state.templates), err.into())
    }

    /// Sends the browser to `location` instead of the page asked for.
    pub fn redirect(location: &'static str) -> Self {
        PageError {
            status: StatusCode::SEE_OTHER,
            body: String::new(),
            redirect_to: Some(location),
            retry_after: None,
        }
    }

    fn render(templates: Option<&Templates>, err: AppError) -> Self {
        let status = err.status_code();
        if let AppError::Unauthorized(_) = err {
            return Self::redirect("/login");
        }
        err.log();
        let retry_after = err.retry_after().map(|secs| secs.to_string());
        let mut context = tera::Context::new();
        context.insert("status", &status.as_u16());
        context.insert("title", status.canonical_reason().unwrap_or("Error"));
        context.insert("message", &err.to_string());
        let plain = || format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or("Error"));
        let body = match templates.map(|t| t.render("error.html", &context)) {
            Some(Ok(html)) => html,
            Some(Err(render_err)) => {
                AppError::from(render_err).log();
                plain()
            }
            None => plain(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(err: &AppError) -> serde_json::Value {
        let bytes = err.error_response().into_body().try_into_bytes().unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let err = AppError::Internal(anyhow::anyhow!("password=hunter2 at /srv/db"));
        let body = body_of(&err);
        assert_eq!(err.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], "internal error");
        assert!(!body.to_string().contains("hunter2"));
    }

    #[test]
    fn invalid_names_the_field() {
        let body = body_of(&AppError::invalid("slug", "must be lowercase"));
        assert_eq!(body["error"]["field"], "slug");
        assert_eq!(body["error"]["code"], "invalid");
    }

    #[test]
    fn rate_limited_rounds_retry_after_up() {
        let err = AppError::RateLimited {
            retry_after: Duration::from_millis(1200),
        };
        let response = err.error_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("2")
        );
    }
}
