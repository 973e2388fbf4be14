//! Public advisory pages: the index with filters and pagination, and the advisory
//! page rendered from a signed revision document, with its history and the steps
//! to verify it with the `minisign` tool.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::advisories::ListQuery;
use crate::auth::MaybeWebUser;
use crate::error::AppError;
use crate::error::PageError;
use crate::http::pages::{context, render};
use crate::http::views::{advisory_context, render_index};
use crate::secrets::sha256_hex;
use crate::services::advisories;
use crate::state::AppState;

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
    let (record, revision, history, fixing) = advisories::page(&state, user.reader(), id.into_inner(), wanted)
        .await
        .map_err(|e| fail(e.into()))?;
    let patches: Vec<PatchLine> = fixing
        .into_iter()
        .map(|p| PatchLine {
            version: p.version,
            platform: p.platform,
            filename: p.filename,
            sha256: p.sha256,
            state: p.state.as_str().to_owned(),
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
            crate::domain::csaf::directory(record.tlp),
            crate::domain::csaf::document_path(&public_id, year)
        ),
    );
    let rows: Vec<HistoryRow> = history
        .iter()
        .map(|r| HistoryRow {
            revision: r.revision,
            date: r.published_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            summary: r.change_summary.clone(),
            status: r.status.as_str().to_owned(),
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
