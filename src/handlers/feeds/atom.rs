//! `GET /feeds/advisories.atom`: an Atom feed of published advisories; a new revision
//! updates its advisory's entry.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use tera::Context;

use crate::db::models::utc;
use crate::domain::advisory::rfc3339;
use crate::domain::AdvisoryStatus;
use crate::error::AppError;
use crate::services::advisories;
use crate::state::AppState;

/// Entries in the feed.
const FEED_ENTRIES: i64 = 50;

#[derive(Serialize)]
struct Entry {
    id: String,
    title: String,
    updated: String,
    published: String,
    html_url: String,
    json_url: String,
    severity: String,
    summary: String,
    emergency: bool,
    revision: i32,
}

pub async fn get_atom_feed(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let latest = advisories::latest_revisions(&state).await?;
    let entries: Vec<Entry> = latest
        .iter()
        .take(usize::try_from(FEED_ENTRIES).unwrap_or(50))
        .map(|(record, revision)| {
            let document: serde_json::Value = serde_json::from_str(&revision.document)
                .map_err(|e| AppError::Internal(anyhow::Error::new(e).context("reading a stored revision")))?;
            let id = record.public_id.clone().unwrap_or_default();
            let severity = record.severity.clone().unwrap_or_else(|| "unrated".into());
            let mut title = format!("{id}: {}", record.title);
            if record.status == AdvisoryStatus::Withdrawn {
                title = format!("[WITHDRAWN] {title}");
            } else if record.emergency {
                title = format!("[EMERGENCY] {title}");
            }
            Ok(Entry {
                html_url: state.config.url(&format!("/advisories/{id}")),
                json_url: state.config.url(&format!("/api/v1/advisories/{id}")),
                updated: rfc3339(utc(revision.published_at)),
                published: record.first_published_at.map(|t| rfc3339(utc(t))).unwrap_or_default(),
                summary: document["summary"].as_str().unwrap_or_default().to_owned(),
                title,
                severity,
                emergency: record.emergency,
                revision: revision.revision,
                id,
            })
        })
        .collect::<Result<_, AppError>>()?;
    let updated = entries
        .iter()
        .map(|e| e.updated.clone())
        .max()
        .unwrap_or_else(|| rfc3339(chrono::Utc::now()));
    let mut context = Context::new();
    context.insert("entries", &entries);
    context.insert("updated", &updated);
    context.insert("vendor", &state.config.vendor_name);
    context.insert("self_url", &state.config.url("/feeds/advisories.atom"));
    context.insert("index_url", &state.config.url("/advisories"));
    let xml = state.templates.render("advisories.atom", &context)?;
    Ok(HttpResponse::Ok()
        .content_type("application/atom+xml; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=60"))
        .body(xml))
}
