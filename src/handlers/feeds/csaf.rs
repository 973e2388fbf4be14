//! The CSAF 2.0 distribution: `/.well-known/csaf/provider-metadata.json`, and under
//! the TLP:WHITE directory one folder per year with each advisory's document and its
//! `.sha256` and `.sha512`, plus `index.txt` and `changes.csv`.

use actix_web::{web, HttpResponse};
use chrono::Datelike;
use serde_json::json;
use sha2::{Digest, Sha512};

use crate::db::models::utc;
use crate::db::models::{AdvisoryRecord, RevisionRecord};
use crate::domain::advisory::rfc3339;
use crate::domain::csaf::{document_path, file_name, DIRECTORY};
use crate::error::AppError;
use crate::secrets::sha256_hex;
use crate::services::advisories;
use crate::state::AppState;

async fn latest(state: &AppState) -> Result<Vec<(AdvisoryRecord, RevisionRecord)>, AppError> {
    Ok(advisories::latest_revisions(state).await?)
}

fn path_of(record: &AdvisoryRecord) -> String {
    let year = record.first_published_at.map_or(0, |t| t.year());
    document_path(record.public_id.as_deref().unwrap_or_default(), year)
}

pub async fn get_provider_metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let all = latest(&state).await?;
    let last_updated = all
        .iter()
        .map(|(_, r)| r.published_at)
        .max()
        .map_or_else(|| rfc3339(chrono::Utc::now()), |t| rfc3339(utc(t)));
    let body = json!({
        "canonical_url": state.config.url("/.well-known/csaf/provider-metadata.json"),
        "distributions": [{"directory_url": state.config.url(&format!("/{DIRECTORY}/"))}],
        "last_updated": last_updated,
        "list_on_CSAF_aggregators": true,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": true,
        "publisher": {"category": "vendor", "name": state.config.vendor_name, "namespace": state.config.public_url.to_string()},
        "role": "csaf_provider",
    });
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(body))
}

pub async fn get_index(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let mut paths: Vec<String> = latest(&state).await?.iter().map(|(a, _)| path_of(a)).collect();
    paths.sort();
    let mut body = paths.join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(body))
}

pub async fn get_changes(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    // Newest first, as the CSAF standard asks of changes.csv.
    let body: String = latest(&state)
        .await?
        .iter()
        .map(|(a, r)| format!("\"{}\",\"{}\"\n", path_of(a), rfc3339(utc(r.published_at))))
        .collect();
    Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").body(body))
}

/// `/.well-known/csaf/white/{year}/{file}`: a document or one of its hash files.
pub async fn get_document(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (year, file) = path.into_inner();
    let (name, kind) = if let Some(name) = file.strip_suffix(".sha256") {
        (name, "sha256")
    } else if let Some(name) = file.strip_suffix(".sha512") {
        (name, "sha512")
    } else {
        (file.as_str(), "json")
    };
    let stem = name.strip_suffix(".json").ok_or(AppError::NotFound("document"))?;
    if !stem
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AppError::NotFound("document"));
    }
    let key = stem.to_uppercase();
    let (record, revision) = crate::services::advisories::published_revision(&state, key, None).await?;
    if path_of(&record) != format!("{year}/{name}")
        || file_name(record.public_id.as_deref().unwrap_or_default()) != name
    {
        return Err(AppError::NotFound("document"));
    }
    let bytes = revision.csaf.as_bytes();
    let response = match kind {
        "sha256" => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{}  {name}\n", sha256_hex(bytes))),
        "sha512" => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{}  {name}\n", hex::encode(Sha512::digest(bytes)))),
        _ => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("etag", format!("\"{}\"", sha256_hex(bytes))))
            .body(revision.csaf.clone()),
    };
    Ok(response)
}
