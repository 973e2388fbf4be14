//! Public advisory pages: the index with filters and pagination, and the advisory
//! page rendered from a signed revision document, with its history and the steps
//! to verify it with the `minisign` tool.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tera::Context;

use crate::auth::{AuthUser, MaybeWebUser};
use crate::db::models::{PatchRecord, Product, RevisionRecord};
use crate::domain::cvss::Severity;
use crate::error::AppError;
use crate::handlers::advisories::{list_page, published_revision, AdvisorySummary, ListQuery};
use crate::handlers::pages::{context, product_options, render, PageError};
use crate::secrets::sha256_hex;
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
    let fail = |err: AppError| PageError::with_state(state, err);
    let products = state.db.run(|conn| Ok(Product::list(conn)?)).await.map_err(fail)?;
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
    let request = match query.parse() {
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
    let summaries: Vec<AdvisorySummary> = records.iter().map(|r| AdvisorySummary::of(state, r)).collect();
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

pub async fn get_index(
    state: web::Data<AppState>,
    user: MaybeWebUser,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    render_index(&state, user.0.as_ref(), &query).await
}

#[derive(Deserialize)]
pub struct RevisionQuery {
    pub revision: Option<String>,
}

/// A patch that fixes the advisory, as the public page names it.
#[derive(Serialize)]
struct PatchLine {
    version: String,
    platform: Option<String>,
    filename: String,
    sha256: Option<String>,
    state: String,
    yank_reason: Option<String>,
}

#[derive(Serialize)]
struct HistoryRow {
    revision: i32,
    date: String,
    summary: String,
    status: String,
    json_url: String,
    sig_url: String,
    page_url: String,
    current: bool,
}

/// Fills the advisory page context from a revision document.
pub fn advisory_context(page: &mut Context, document: &Value, id: &str) {
    page.insert("doc", document);
    page.insert("advisory_id", id);
    page.insert("withdrawn", &(document["status"] == "withdrawn"));
}

pub async fn get_advisory_page(
    state: web::Data<AppState>,
    user: MaybeWebUser,
    id: web::Path<String>,
    query: web::Query<RevisionQuery>,
) -> Result<HttpResponse, PageError> {
    let fail = |err: AppError| PageError::with_state(&state, err);
    let wanted = match query.revision.as_deref() {
        None | Some("") => None,
        Some(text) => Some(text.parse::<i32>().map_err(|_| fail(AppError::NotFound("revision")))?),
    };
    let (record, revision) = published_revision(&state, id.into_inner(), wanted)
        .await
        .map_err(fail)?;
    let advisory_id = record.id.clone();
    let (history, fixing) = state
        .db
        .run(move |conn| {
            Ok((
                RevisionRecord::list(conn, &advisory_id)?,
                PatchRecord::fixing(conn, &advisory_id)?,
            ))
        })
        .await
        .map_err(fail)?;
    let patches: Vec<PatchLine> = fixing
        .into_iter()
        .map(|p| PatchLine {
            version: p.version,
            platform: p.platform,
            filename: p.filename,
            sha256: p.sha256,
            state: p.state,
            yank_reason: p.yank_reason,
        })
        .collect();
    let document: Value = serde_json::from_str(&revision.document).map_err(|e| fail(AppError::Internal(e.into())))?;
    let public_id = record.public_id.clone().unwrap_or_default();
    let mut page = context(user.0.as_ref());
    advisory_context(&mut page, &document, &public_id);
    let base = format!("/api/v1/advisories/{public_id}/revisions/{}", revision.revision);
    page.insert("json_url", &base);
    page.insert("sig_url", &format!("{base}/minisig"));
    page.insert("key_url", &format!("/api/v1/keys/{}", revision.key_id));
    page.insert("key_id", &revision.key_id);
    page.insert("sha256", &sha256_hex(revision.document.as_bytes()));
    page.insert(
        "file_name",
        &format!("{}-r{}.json", public_id.to_lowercase(), revision.revision),
    );
    page.insert("revision", &revision.revision);
    page.insert("latest_revision", &record.latest_revision);
    page.insert("public_base", &state.config.url(""));
    let year = record.first_published_at.map_or(0, |t| chrono::Datelike::year(&t));
    page.insert(
        "csaf_url",
        &format!(
            "/{}/{}",
            crate::domain::csaf::DIRECTORY,
            crate::domain::csaf::document_path(&public_id, year)
        ),
    );
    let rows: Vec<HistoryRow> = history
        .iter()
        .map(|r| HistoryRow {
            revision: r.revision,
            date: r.published_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            summary: r.change_summary.clone(),
            status: r.status.clone(),
            json_url: format!("/api/v1/advisories/{public_id}/revisions/{}", r.revision),
            sig_url: format!("/api/v1/advisories/{public_id}/revisions/{}/minisig", r.revision),
            page_url: format!("/advisories/{public_id}?revision={}", r.revision),
            current: r.revision == revision.revision,
        })
        .collect();
    page.insert("history", &rows);
    page.insert("patches", &patches);
    page.insert("preview", &false);
    render(&state, StatusCode::OK, "advisory.html", &page)
}
