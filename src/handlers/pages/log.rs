//! `GET /vendor/log`: the transparency log as a timeline for vendor staff — every
//! publication, yank, key change, image, enrolment, install report and observation,
//! who did it and when, filterable by kind, actor and customer, with the newest
//! signed tree head and, under a witness policy, whether its cosignatures meet the
//! quorum and how each witness stands.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

use crate::auth::WebVendor;
use crate::error::PageError;
use crate::http::pages::{context, render};
use crate::services::log::TimelineQuery;
use crate::services::witnesses;
use crate::state::AppState;

pub async fn get_log(
    state: web::Data<AppState>,
    user: WebVendor,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let page = witnesses::log_page(&state, query.clone())
        .await
        .map_err(|e| PageError::with_state(&state, e))?;
    let mut ctx = context(Some(&user.0));
    ctx.insert("timeline", &page.timeline);
    ctx.insert("witnesses", &page.witnesses);
    ctx.insert("kind", query.kind.as_deref().unwrap_or(""));
    ctx.insert("actor", query.actor.as_deref().unwrap_or(""));
    ctx.insert("customer", query.customer.as_deref().unwrap_or(""));
    render(&state, StatusCode::OK, "vendor_log.html", &ctx)
}
