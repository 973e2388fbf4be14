//! The fleet screens. Every signed-in user sees the fleet its scope covers — a
//! customer admin its own, the vendor every customer's (or one, with `?customer=`):
//! the dashboard of advisories that concern it with their adoption charts, the
//! device list with its filters, and a device's page with its version timeline and
//! install reports. Customer admins also enrol and decommission devices and manage
//! enrolment tokens here.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::api::events::AnomalyResponse;
use crate::auth::{AuthUser, WebUser};
use crate::db::models::utc;
use crate::error::{AppError, PageError};
use crate::http::chart;
use crate::http::pages::{context, render};
use crate::services::fleet::exposure::Counts;
use crate::services::fleet::screens::{self};
use crate::state::AppState;
use crate::when::span_text;

mod device_pages;
mod rollout_pages;
mod token_pages;
mod webhook_pages;

pub use device_pages::{
    get_device, get_devices, post_ack, post_decommission, post_device, post_pull, AckForm, DeviceForm,
};
pub use rollout_pages::{
    get_rollouts, get_windows, post_choice, post_emergency_policy, post_window, post_window_delete, ChoiceForm,
    PolicyForm, WindowForm,
};
pub use token_pages::{get_tokens, post_token, post_token_revoke, TokenForm};
pub use webhook_pages::{
    get_webhooks, post_delivery_retry, post_webhook, post_webhook_delete, post_webhook_ping, WebhookForm,
};

#[derive(Serialize)]
struct AdvisoryCard {
    id: String,
    title: String,
    emergency: bool,
    fix_deadline: Option<String>,
    /// `overdue by 3 h 10 min`, once the deadline has passed.
    overdue_by: Option<String>,
    counts: Counts,
    chart: String,
}

/// How long past `deadline` it is as `now` sees it (`overdue by 3 h 10 min`); none
/// before it (the deadline's own moment says how far off it is).
pub(crate) fn overdue_by(
    deadline: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<String> {
    let seconds = (now - deadline).num_seconds();
    (seconds >= 0).then(|| format!("overdue by {}", span_text(seconds)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DashboardQuery {
    #[serde(default)]
    customer: Option<String>,
}

pub(super) fn page_error(state: &AppState, err: impl Into<AppError>) -> PageError {
    PageError::with_state(state, err)
}

/// A device that says it is cut off from genuine answers.
#[derive(Serialize)]
struct StaleRow {
    id: String,
    name: String,
    since: Option<String>,
    head_age: Option<String>,
}

/// `GET /fleet`: the advisories that concern the fleet, emergencies first.
pub async fn get_dashboard(
    state: web::Data<AppState>,
    user: WebUser,
    query: web::Query<DashboardQuery>,
) -> Result<HttpResponse, PageError> {
    let customer = query.into_inner().customer.filter(|c| !c.is_empty());
    dashboard_page(&state, &user.0, customer, None).await
}

/// The fleet's state — its emergencies, the other advisories that concern it, its
/// stale devices and open anomalies — as the fleet screen and a customer admin's
/// home show it (the home names the customer in `home`).
pub(crate) async fn dashboard_page(
    state: &AppState,
    user: &AuthUser,
    customer: Option<String>,
    home: Option<&str>,
) -> Result<HttpResponse, PageError> {
    let overview = screens::overview(state, &user.scope, customer.clone())
        .await
        .map_err(|e| page_error(state, e))?;
    let now = chrono::Utc::now();
    let cards: Vec<AdvisoryCard> = overview
        .advisories
        .iter()
        .map(|e| AdvisoryCard {
            id: e.public_id.clone(),
            title: e.advisory.title.clone(),
            emergency: e.emergency,
            fix_deadline: e.fix_deadline.map(|d| d.to_rfc3339()),
            overdue_by: e.fix_deadline.and_then(|d| overdue_by(d, now)),
            counts: e.counts,
            chart: chart::adoption(&e.history),
        })
        .collect();
    let anomalies: Vec<AnomalyResponse> = overview.anomalies.iter().map(AnomalyResponse::from).collect();
    let stale: Vec<StaleRow> = overview
        .stale
        .iter()
        .map(|d| StaleRow {
            id: d.id.to_string(),
            name: d.name.clone(),
            since: d.stale_since.map(|t| utc(t).to_rfc3339()),
            head_age: d.head_age_s.map(span_text),
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("stale", &stale);
    page.insert("advisories", &cards);
    page.insert("anomalies", &anomalies);
    page.insert("customer", &customer);
    page.insert("home", &home);
    page.insert("is_customer", &user.scope.customer().is_some());
    render(state, StatusCode::OK, "fleet_dashboard.html", &page)
}
