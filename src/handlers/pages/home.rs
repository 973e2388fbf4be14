//! `GET /`: the public landing page, or the signed-in user's home. A customer admin's
//! home is its fleet's state, emergencies first; the vendor's is every open
//! emergency with each customer's progress, most exposed first (or as sorted).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::fleet::{dashboard_page, overdue_by};
use crate::api::advisories::ListQuery;
use crate::auth::{AuthUser, MaybeWebUser};
use crate::domain::Role;
use crate::error::PageError;
use crate::http::pages::{context, render};
use crate::http::views::render_index;
use crate::services::fleet::exposure::Counts;
use crate::services::fleet::screens::{self, ProgressOrder};
use crate::services::users;
use crate::state::AppState;

/// How the vendor sorts an emergency's customers.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HomeQuery {
    #[serde(default)]
    sort: Option<ProgressOrder>,
}

#[derive(Serialize)]
struct CustomerProgress {
    slug: String,
    counts: Counts,
    devices: i64,
    /// Percent of the devices it ever concerned that run a fixed version.
    fixed_percent: i64,
}

#[derive(Serialize)]
struct EmergencyView {
    id: String,
    title: String,
    fix_deadline: Option<String>,
    /// `overdue by …`, once the deadline has passed.
    overdue_by: Option<String>,
    counts: Counts,
    customers: Vec<CustomerProgress>,
}

pub async fn get_home(
    state: web::Data<AppState>,
    user: MaybeWebUser,
    query: web::Query<HomeQuery>,
) -> Result<HttpResponse, PageError> {
    let Some(user) = user.0 else {
        return render_index(&state, None, &ListQuery::default()).await;
    };
    let (customer, customers, users) = users::overview(&state, &user.scope)
        .await
        .map_err(|err| PageError::with_state(&state, err))?;
    match customer {
        Some(customer) => dashboard_page(&state, &user, None, Some(&customer.name)).await,
        None => {
            vendor_home(
                &state,
                &user,
                query.into_inner().sort.unwrap_or_default(),
                customers,
                users,
            )
            .await
        }
    }
}

async fn vendor_home(
    state: &AppState,
    user: &AuthUser,
    sort: ProgressOrder,
    customer_count: i64,
    user_count: i64,
) -> Result<HttpResponse, PageError> {
    let emergencies = screens::emergencies(state, &user.scope, sort)
        .await
        .map_err(|err| PageError::with_state(state, err))?;
    let now = chrono::Utc::now();
    let views: Vec<EmergencyView> = emergencies
        .into_iter()
        .map(|e| EmergencyView {
            id: e.public_id,
            title: e.title,
            fix_deadline: e.fix_deadline.map(|d| d.to_rfc3339()),
            overdue_by: e.fix_deadline.and_then(|d| overdue_by(d, now)),
            counts: e.counts,
            customers: e
                .customers
                .into_iter()
                .map(|c| CustomerProgress {
                    slug: c.customer,
                    devices: c.counts.affected + c.counts.fixed + c.counts.unaffected + c.counts.unknown,
                    fixed_percent: match c.counts.concerned() {
                        0 => 100,
                        n => c.counts.fixed * 100 / n,
                    },
                    counts: c.counts,
                })
                .collect(),
        })
        .collect();
    let mut page = context(Some(user));
    page.insert("user_count", &user_count);
    page.insert("customer_count", &customer_count);
    page.insert("is_admin", &(user.role == Role::VendorAdmin));
    page.insert("emergencies", &views);
    page.insert("sort", &sort);
    render(state, StatusCode::OK, "home_vendor.html", &page)
}
