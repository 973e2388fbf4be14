//! Page parts that more than one page renders: the advisory index (the index page
//! and the signed-out home page) and an advisory's document context (the public
//! page and the vendor preview).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::Value;
use tera::Context;

use crate::api::advisories::{AdvisorySummary, ListQuery};
use crate::auth::AuthUser;
use crate::domain::cvss::Severity;
use crate::domain::state::RevisionStatus;
use crate::error::PageError;
use crate::http::pages::{context, product_options, render};
use crate::services::advisories::list_page;
use crate::services::{tenants, ServiceError};
use crate::state::AppState;

#[derive(Serialize)]
struct PageLink {
    number: u32,
    href: String,
}

fn query_string(query: &ListQuery, page: u32) -> String {
    let mut pairs = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in [
        ("product", &query.product),
        ("severity", &query.severity),
        ("cve", &query.cve),
        ("q", &query.q),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
            pairs.append_pair(key, value);
        }
    }
    if query.emergency == Some(true) {
        pairs.append_pair("emergency", "true");
    }
    if page > 1 {
        pairs.append_pair("page", &page.to_string());
    }
    let text = pairs.finish();
    if text.is_empty() {
        "/advisories".into()
    } else {
        format!("/advisories?{text}")
    }
}

/// The advisory index for `query`, as `GET /advisories` and the signed-out `/` show it.
pub async fn render_index(
    state: &AppState,
    user: Option<&AuthUser>,
    query: &ListQuery,
) -> Result<HttpResponse, PageError> {
    let fail = |err: ServiceError| PageError::with_state(state, err);
    let products = tenants::products(state).await.map_err(fail)?;
    let mut page = context(user);
    page.insert("products", &product_options(&products));
    page.insert(
        "severities",
        &Severity::ALL.iter().rev().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    page.insert("filter_product", &query.product.clone().unwrap_or_default());
    page.insert("filter_severity", &query.severity.clone().unwrap_or_default());
    page.insert("filter_cve", &query.cve.clone().unwrap_or_default());
    page.insert("filter_q", &query.q.clone().unwrap_or_default());
    page.insert("filter_emergency", &(query.emergency == Some(true)));
    let request = match query.parse(crate::auth::reader_of(user)) {
        Ok(request) => request,
        Err(err) => {
            page.insert("error", &err.to_string());
            page.insert("advisories", &Vec::<AdvisorySummary>::new());
            page.insert("total", &0);
            return render(state, StatusCode::UNPROCESSABLE_ENTITY, "advisory_index.html", &page);
        }
    };
    let (number, per_page) = (request.page, request.per_page);
    let (records, total) = list_page(state, request).await.map_err(fail)?;
    let summaries: Vec<AdvisorySummary> = records.iter().map(|r| AdvisorySummary::of(&state.config, r)).collect();
    let last_page = u32::try_from((total + i64::from(per_page) - 1) / i64::from(per_page))
        .unwrap_or(u32::MAX)
        .max(1);
    page.insert("advisories", &summaries);
    page.insert("total", &total);
    page.insert("page", &number);
    page.insert("last_page", &last_page);
    if number > 1 {
        page.insert(
            "prev",
            &PageLink {
                number: number - 1,
                href: query_string(query, number - 1),
            },
        );
    }
    if number < last_page {
        page.insert(
            "next",
            &PageLink {
                number: number + 1,
                href: query_string(query, number + 1),
            },
        );
    }
    page.insert("feed_url", "/feeds/advisories.atom");
    render(state, StatusCode::OK, "advisory_index.html", &page)
}

/// Fills the advisory page context from a revision document.
pub fn advisory_context(page: &mut Context, document: &Value, id: &str) {
    page.insert("doc", document);
    page.insert("advisory_id", id);
    page.insert("withdrawn", &(document["status"] == RevisionStatus::Withdrawn.as_str()));
}
