//! The CSAF 2.0 trusted provider (§7.1): `provider-metadata.json`, the TLP:WHITE
//! directory (year folders with each document and its `.sha256`, `.sha512` and
//! OpenPGP `.asc`, `index.txt`, `changes.csv`, listings), the ROLIE feed with its
//! service and category documents, the OpenPGP public keys, and `security.txt`.
//! Every file is public, answered without redirects and open to other origins.

use actix_web::http::header;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use sha2::{Digest, Sha512};
use tera::Context;

use crate::auth::AuthUser;
use crate::domain::csaf::directory;
use crate::domain::csaf::provider;
use crate::domain::{Reader, Tlp};
use crate::error::AppError;
use crate::secrets::sha256_hex;
use crate::services::csaf::{self, CsafFile};
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

/// Who asks for a distribution's files: anyone for TLP:WHITE, a signed-in reader for
/// TLP:AMBER and TLP:RED (whose files no shared cache keeps and no other origin reads).
struct Access {
    tlp: Tlp,
    reader: Reader,
}

impl Access {
    fn white() -> Access {
        Access {
            tlp: Tlp::White,
            reader: Reader::Anyone,
        }
    }

    /// The restricted distribution named by a path's `amber` or `red`.
    fn restricted(folder: &str, user: &AuthUser) -> Result<Access, AppError> {
        let tlp = [Tlp::Amber, Tlp::Red]
            .into_iter()
            .find(|t| t.folder() == folder)
            .ok_or(AppError::NotFound("distribution"))?;
        Ok(Access {
            tlp,
            reader: Reader::in_scope(&user.scope),
        })
    }

    fn response(&self, content_type: &str) -> HttpResponseBuilder {
        if !self.tlp.restricted() {
            return public(content_type);
        }
        let mut response = HttpResponse::Ok();
        response
            .content_type(content_type)
            .insert_header((header::CACHE_CONTROL, "private, no-store"));
        response
    }
}

pub async fn get_provider_metadata(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::public_file(&state, CsafFile::Metadata).await?;
    Ok(public("application/json").body(body))
}

pub async fn get_service(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::public_file(&state, CsafFile::Service).await?;
    Ok(public("application/json").body(body))
}

pub async fn get_category(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::public_file(&state, CsafFile::Category).await?;
    Ok(public("application/json").body(body))
}

pub async fn get_index(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::public_file(&state, CsafFile::Index).await?;
    Ok(public("text/plain; charset=utf-8").body(body))
}

pub async fn get_changes(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::public_file(&state, CsafFile::Changes).await?;
    Ok(public("text/csv; charset=utf-8").body(body))
}

pub async fn get_feed(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::public_file(&state, CsafFile::Feed).await?;
    Ok(public("application/json").body(body))
}

/// A file of the restricted distribution the path names, as the signed-in reader
/// may read it.
async fn restricted(
    state: &AppState,
    user: &AuthUser,
    folder: &str,
    file: CsafFile,
    content_type: &str,
) -> Result<HttpResponse, AppError> {
    let access = Access::restricted(folder, user)?;
    let body = csaf::restricted_file(state, access.tlp, access.reader.clone(), file).await?;
    Ok(access.response(content_type).body(body))
}

/// `/.well-known/csaf/{amber|red}/index.txt`: what the signed-in reader may read.
pub async fn get_restricted_index(
    state: web::Data<AppState>,
    user: AuthUser,
    tlp: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    restricted(&state, &user, &tlp, CsafFile::Index, "text/plain; charset=utf-8").await
}

pub async fn get_restricted_changes(
    state: web::Data<AppState>,
    user: AuthUser,
    tlp: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    restricted(&state, &user, &tlp, CsafFile::Changes, "text/csv; charset=utf-8").await
}

/// `/.well-known/csaf/feed-tlp-{amber|red}.json`.
pub async fn get_restricted_feed(
    state: web::Data<AppState>,
    user: AuthUser,
    tlp: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    restricted(&state, &user, &tlp, CsafFile::Feed, "application/json").await
}

pub async fn get_security_txt(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let body = csaf::security_txt(&state, chrono::TimeDelta::days(SECURITY_TXT_DAYS));
    Ok(public("text/plain; charset=utf-8").body(body))
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
fn listing(
    state: &AppState,
    access: &Access,
    path: &str,
    folders: &[String],
    files: &[String],
) -> Result<HttpResponse, AppError> {
    let mut context = Context::new();
    context.insert("path", path);
    context.insert("below", &(path != format!("/{}/", directory(access.tlp))));
    context.insert("folders", folders);
    context.insert("files", files);
    let html = state.templates.render("csaf_directory.html", &context)?;
    Ok(access.response("text/html; charset=utf-8").body(html))
}

/// The listing of a distribution's directory: the index files and the year folders.
async fn directory_listing(state: &AppState, access: Access) -> Result<HttpResponse, AppError> {
    let found = csaf::distribution(state, access.tlp, access.reader.clone()).await?;
    let years: Vec<String> = provider::years(&found.documents).iter().map(i32::to_string).collect();
    let files = ["changes.csv".to_owned(), "index.txt".to_owned()];
    listing(state, &access, &format!("/{}/", directory(access.tlp)), &years, &files)
}

/// The listing of one year folder.
async fn year_listing(state: &AppState, access: Access, year: &str) -> Result<HttpResponse, AppError> {
    let year: i32 = year
        .parse()
        .ok()
        .filter(|y| (1000..=9999).contains(y))
        .ok_or(AppError::NotFound("folder"))?;
    let found = csaf::distribution(state, access.tlp, access.reader.clone()).await?;
    let names = provider::files_in(&found.documents, year);
    if names.is_empty() {
        return Err(AppError::NotFound("folder"));
    }
    let path = format!("/{}/{year}/", directory(access.tlp));
    listing(state, &access, &path, &[], &names)
}

pub async fn get_directory(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    directory_listing(&state, Access::white()).await
}

pub async fn get_year(state: web::Data<AppState>, year: web::Path<String>) -> Result<HttpResponse, AppError> {
    year_listing(&state, Access::white(), &year).await
}

pub async fn get_restricted_directory(
    state: web::Data<AppState>,
    user: AuthUser,
    tlp: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    directory_listing(&state, Access::restricted(&tlp, &user)?).await
}

pub async fn get_restricted_year(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (tlp, year) = path.into_inner();
    year_listing(&state, Access::restricted(&tlp, &user)?, &year).await
}

/// `/.well-known/csaf/white/{year}/{file}`: a document, its hash files, or its
/// OpenPGP signature.
pub async fn get_document(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (year, file) = path.into_inner();
    document(&state, Access::white(), year, file).await
}

/// `/.well-known/csaf/{amber|red}/{year}/{file}`, for a reader it is for.
pub async fn get_restricted_document(
    state: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (tlp, year, file) = path.into_inner();
    document(&state, Access::restricted(&tlp, &user)?, year, file).await
}

async fn document(state: &AppState, access: Access, year: String, file: String) -> Result<HttpResponse, AppError> {
    let (name, kind) = [".sha256", ".sha512", ".asc"]
        .into_iter()
        .find_map(|suffix| file.strip_suffix(suffix).map(|name| (name, suffix)))
        .unwrap_or((file.as_str(), ""));
    let (_, revision) = csaf::document(state, access.tlp, access.reader.clone(), year, name.to_owned()).await?;
    let bytes = revision.csaf.as_bytes();
    let response = match kind {
        ".sha256" => access
            .response("text/plain; charset=utf-8")
            .body(format!("{}  {name}\n", sha256_hex(bytes))),
        ".sha512" => access
            .response("text/plain; charset=utf-8")
            .body(format!("{}  {name}\n", hex::encode(Sha512::digest(bytes)))),
        ".asc" => {
            let signature = revision.csaf_signature.ok_or(AppError::NotFound("signature"))?;
            access.response("application/pgp-signature").body(signature)
        }
        _ => access
            .response("application/json")
            .insert_header((header::ETAG, format!("\"{}\"", sha256_hex(bytes))))
            .body(revision.csaf),
    };
    Ok(response)
}
