//! The CSAF 2.0 trusted provider (§7.1): `provider-metadata.json`, the TLP:WHITE
//! directory (year folders with each document and its `.sha256`, `.sha512` and
//! OpenPGP `.asc`, `index.txt`, `changes.csv`, listings), the ROLIE feed with its
//! service and category documents, the OpenPGP public keys, and `security.txt`.
//! Every file is public, answered without redirects and open to other origins.

use actix_web::http::header;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use sha2::{Digest, Sha512};
use tera::Context;

use crate::domain::csaf::provider::{self, Provider};
use crate::domain::csaf::DIRECTORY;
use crate::error::AppError;
use crate::secrets::sha256_hex;
use crate::services::csaf::{self, Distribution};
use crate::state::AppState;

/// How long a client may keep a listing or feed before asking again.
const LISTING_CACHE: &str = "public, max-age=300";
/// `security.txt` says it holds this long from when it is served.
const SECURITY_TXT_DAYS: i64 = 180;

/// A public file's response: any origin may read it (CSAF 2.1 asks this of
/// providers; aggregators' web front ends depend on it).
fn public(content_type: &str) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response
        .content_type(content_type)
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .insert_header((header::CACHE_CONTROL, LISTING_CACHE));
    response
}

fn json(value: &serde_json::Value) -> HttpResponse {
    public("application/json").body(value.to_string())
}

fn provider<'a>(state: &'a AppState, base: &'a str, found: &'a Distribution) -> Provider<'a> {
    Provider {
        base,
        publisher: &state.publish.publisher,
        keys: &found.keys,
    }
}

fn base(state: &AppState) -> String {
    state.config.url("")
}

pub async fn get_provider_metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(&state).await?;
    let base = base(&state);
    Ok(json(&provider::metadata(
        &provider(&state, &base, &found),
        &found.documents,
        chrono::Utc::now(),
    )))
}

pub async fn get_index(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(&state).await?;
    Ok(public("text/plain; charset=utf-8").body(provider::index_txt(&found.documents)))
}

pub async fn get_changes(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(&state).await?;
    Ok(public("text/csv; charset=utf-8").body(provider::changes_csv(&found.documents)))
}

pub async fn get_feed(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(&state).await?;
    let base = base(&state);
    Ok(json(&provider::rolie_feed(
        &provider(&state, &base, &found),
        &found.documents,
        chrono::Utc::now(),
    )))
}

pub async fn get_service(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = Distribution {
        documents: Vec::new(),
        keys: Vec::new(),
    };
    let base = base(&state);
    Ok(json(&provider::service_document(&provider(&state, &base, &found))))
}

pub async fn get_category(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(&state).await?;
    let base = base(&state);
    Ok(json(&provider::category_document(
        &provider(&state, &base, &found),
        &found.documents,
    )))
}

pub async fn get_security_txt(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = Distribution {
        documents: Vec::new(),
        keys: Vec::new(),
    };
    let base = base(&state);
    let expires = chrono::Utc::now() + chrono::TimeDelta::days(SECURITY_TXT_DAYS);
    Ok(public("text/plain; charset=utf-8").body(provider::security_txt(
        &provider(&state, &base, &found),
        &state.config.security_contact(),
        expires,
    )))
}

/// `/.well-known/csaf/openpgp/{FINGERPRINT}.asc`: an armored public key.
pub async fn get_key(state: web::Data<AppState>, file: web::Path<String>) -> Result<HttpResponse, AppError> {
    let fingerprint = file
        .strip_suffix(".asc")
        .filter(|f| f.len() == 40 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or(AppError::NotFound("key"))?;
    let key = csaf::key(&state, fingerprint.to_owned()).await?;
    Ok(public("application/pgp-keys").body(key.armored))
}

/// A folder's listing: its sub-folders (named without the slash) and files.
fn listing(state: &AppState, path: &str, folders: &[String], files: &[String]) -> Result<HttpResponse, AppError> {
    let mut context = Context::new();
    context.insert("path", path);
    context.insert("below", &(path != format!("/{DIRECTORY}/")));
    context.insert("folders", folders);
    context.insert("files", files);
    let html = state.templates.render("csaf_directory.html", &context)?;
    Ok(public("text/html; charset=utf-8").body(html))
}

/// The listing of the TLP:WHITE directory: the index files and the year folders.
pub async fn get_directory(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(&state).await?;
    let years: Vec<String> = provider::years(&found.documents).iter().map(i32::to_string).collect();
    let files = ["changes.csv".to_owned(), "index.txt".to_owned()];
    listing(&state, &format!("/{DIRECTORY}/"), &years, &files)
}

/// The listing of one year folder.
pub async fn get_year(state: web::Data<AppState>, year: web::Path<String>) -> Result<HttpResponse, AppError> {
    let year: i32 = year
        .parse()
        .ok()
        .filter(|y| (1000..=9999).contains(y))
        .ok_or(AppError::NotFound("folder"))?;
    let found = csaf::distribution(&state).await?;
    let names = provider::files_in(&found.documents, year);
    if names.is_empty() {
        return Err(AppError::NotFound("folder"));
    }
    listing(&state, &format!("/{DIRECTORY}/{year}/"), &[], &names)
}

/// `/.well-known/csaf/white/{year}/{file}`: a document, its hash files, or its
/// OpenPGP signature.
pub async fn get_document(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (year, file) = path.into_inner();
    let (name, kind) = [".sha256", ".sha512", ".asc"]
        .into_iter()
        .find_map(|suffix| file.strip_suffix(suffix).map(|name| (name, suffix)))
        .unwrap_or((file.as_str(), ""));
    let (_, revision) = csaf::document(&state, year, name.to_owned()).await?;
    let bytes = revision.csaf.as_bytes();
    let response = match kind {
        ".sha256" => public("text/plain; charset=utf-8").body(format!("{}  {name}\n", sha256_hex(bytes))),
        ".sha512" => {
            public("text/plain; charset=utf-8").body(format!("{}  {name}\n", hex::encode(Sha512::digest(bytes))))
        }
        ".asc" => {
            let signature = revision.csaf_signature.ok_or(AppError::NotFound("signature"))?;
            public("application/pgp-signature").body(signature)
        }
        _ => public("application/json")
            .insert_header((header::ETAG, format!("\"{}\"", sha256_hex(bytes))))
            .body(revision.csaf),
    };
    Ok(response)
}
