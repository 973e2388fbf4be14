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
use crate::auth::WebUser;
use crate::db::models::utc;
use crate::error::{AppError, PageError};
use crate::http::chart;
use crate::http::pages::{context, render};
use crate::services::fleet::screens::{self};
use crate::state::AppState;

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
struct Counts {
    affected: i64,
    fixed: i64,
    unaffected: i64,
    unknown: i64,
    overdue: i64,
    claimed_not_running: i64,
    stalled: i64,
}

#[derive(Serialize)]
struct AdvisoryCard {
    id: String,
    title: String,
    emergency: bool,
    fix_deadline: Option<String>,
    counts: Counts,
    chart: String,
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
    since: String,
    head_age: Option<String>,
}

/// An age in seconds as a person reads it: `3 h 12 min`, `45 min`, `20 s`.
pub(super) fn age_text(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// `GET /fleet`: the advisories that concern the fleet, emergencies first.
pub async fn get_dashboard(
    state: web::Data<AppState>,
    user: WebUser,
    query: web::Query<DashboardQuery>,
) -> Result<HttpResponse, PageError> {
    let customer = query.into_inner().customer.filter(|c| !c.is_empty());
    let overview = screens::overview(&state, &user.0.scope, customer.clone())
        .await
        .map_err(|e| page_error(&state, e))?;
    let cards: Vec<AdvisoryCard> = overview
        .advisories
        .iter()
        .map(|e| AdvisoryCard {
            id: e.public_id.clone(),
            title: e.advisory.title.clone(),
            emergency: e.emergency,
            fix_deadline: e.fix_deadline.map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()),
            counts: Counts {
                affected: e.counts.affected,
                fixed: e.counts.fixed,
                unaffected: e.counts.unaffected,
                unknown: e.counts.unknown,
                overdue: e.counts.overdue,
                claimed_not_running: e.counts.claimed_not_running,
                stalled: e.counts.stalled,
            },
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
            since: d
                .stale_since
                .map(|t| utc(t).format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            head_age: d.head_age_s.map(age_text),
        })
        .collect();
    let mut page = context(Some(&user.0));
    page.insert("stale", &stale);
    page.insert("advisories", &cards);
    page.insert("anomalies", &anomalies);
    page.insert("customer", &customer);
    page.insert("is_customer", &user.customer().is_some());
    render(&state, StatusCode::OK, "fleet_dashboard.html", &page)
}
