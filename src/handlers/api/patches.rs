//! Patches over the API: vendors draft, upload (streamed), publish (signed) and yank;
//! entitled customers list, inspect and download with `Range`, `If-Range`, strong
//! `ETag`, `If-None-Match` and `HEAD`; the `.minisig` is served beside the file.

use actix_web::body::SizedStream;
use actix_web::http::{header, Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::api::log::Logged;
use crate::api::patches::{PatchResponse, StoredFileResponse};
use crate::auth::{AuthUser, Someone, VendorUser};
use crate::db::models::PatchView;
use crate::domain::proof::PROOF_EXTENSION;
use crate::error::AppError;
use crate::http::extract::declared_length;
use crate::http::ranges::{if_range_allows, none_match_hits, parse_range, RangeAnswer};
use crate::services::fleet::poll;
use crate::services::log;
use crate::services::patches::uploads;
use crate::services::patches::{self, Downloadable, PatchDraft, PatchReader};
use crate::state::AppState;

/// `POST /api/v1/patches`: a draft; the answer names where to upload the file.
pub async fn create_patch(
    state: web::Data<AppState>,
    caller: VendorUser,
    body: web::Json<PatchDraft>,
) -> Result<HttpResponse, AppError> {
    let view = patches::create_draft(&state, &caller.0.caller(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(PatchResponse::of(&state.config, view)?))
}

/// `PUT /api/v1/patches/{id}/file`: the file, streamed to storage while hashed.
pub async fn upload_patch_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, AppError> {
    let (patch, stored) =
        uploads::put_file(&state, &caller.0.caller(), id.into_inner(), declared_length(&req), body).await?;
    Ok(HttpResponse::Ok().json(StoredFileResponse::of(&patch, stored)))
}

/// `POST /api/v1/patches/{id}/publish`: signs the stored file and publishes the patch.
pub async fn publish_patch(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (view, logged) = patches::publish(&state, &caller.0.caller(), &id).await?;
    logged_patch_response(&state, view, logged, StatusCode::CREATED).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YankRequest {
    pub reason: String,
}

/// `POST /api/v1/patches/{id}/yank`: stops offering and serving the file; the
/// patch stays listed with the reason.
pub async fn yank_patch(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Json<YankRequest>,
) -> Result<HttpResponse, AppError> {
    let (view, logged) =
        patches::yank_published(&state, &caller.0.caller(), id.into_inner(), body.into_inner().reason).await?;
    logged_patch_response(&state, view, logged, StatusCode::OK).await
}

/// The patch as it stands after a publish or yank, with its log entry and head.
async fn logged_patch_response(
    state: &AppState,
    view: PatchView,
    logged: Logged,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let response = PatchResponse {
        log: Some(logged),
        ..PatchResponse::of(&state.config, view)?
    };
    Ok(HttpResponse::build(status).json(response))
}

async fn get_patch_response(
    state: &AppState,
    reader: PatchReader,
    id: String,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let view = patches::view(state, reader, id).await?;
    Ok(HttpResponse::build(status).json(PatchResponse::of(&state.config, view)?))
}

/// `GET /api/v1/patches`: what the caller may see.
pub async fn list_patches(state: web::Data<AppState>, caller: AuthUser) -> Result<HttpResponse, AppError> {
    let reader = PatchReader::from(&caller.scope);
    let views = patches::list(&state, reader).await?;
    let list = views
        .into_iter()
        .map(|v| PatchResponse::of(&state.config, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(list))
}

/// `GET /api/v1/patches/{id}`
pub async fn get_patch(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    get_patch_response(
        &state,
        PatchReader::from(&caller.scope),
        id.into_inner(),
        StatusCode::OK,
    )
    .await
}

/// `GET /api/v1/patches/{id}/minisig`
pub async fn get_patch_minisig(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let view = patches::view(&state, PatchReader::from(&caller.scope), id.into_inner()).await?;
    let signature = view.patch.signature.ok_or(AppError::NotFound("signature"))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.minisig\"", view.patch.filename),
        ))
        .body(signature))
}

/// Patch `id` when `caller` may download it: a user who may see it, or a device
/// it is offered to (a device downloads exactly the patches it is offered).
async fn downloadable_by(state: &AppState, caller: Someone, id: String) -> Result<Downloadable, AppError> {
    Ok(match caller {
        Someone::User(user) => patches::downloadable(state, PatchReader::from(&user.scope), id).await?,
        Someone::Device(device) => poll::downloadable(state, &device, id).await?,
    })
}

/// `GET /api/v1/patches/{id}/proof`: the C2SP `tlog-proof` of the patch's
/// publication, for whoever may download it — what a patch brought in by hand is
/// checked against offline.
pub async fn get_patch_proof(
    state: web::Data<AppState>,
    caller: Someone,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let Downloadable { view, .. } = downloadable_by(&state, caller, id.into_inner()).await?;
    let proof = log::patch_proof(&state, &view.patch.id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "private, no-cache"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}.{PROOF_EXTENSION}\"", view.patch.filename),
        ))
        .body(proof))
}

/// `GET` and `HEAD /api/v1/patches/{id}/download`
pub async fn download_patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Someone,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let Downloadable { view, sha256, size } = downloadable_by(&state, caller, id.into_inner()).await?;
    let etag = format!("\"{sha256}\"");
    let headers = req.headers();
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let mut response = HttpResponse::build(StatusCode::OK);
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CACHE_CONTROL, "private, max-age=31536000, immutable"))
        .insert_header(("x-content-sha256", sha256.clone()));
    if none_match_hits(text(header::IF_NONE_MATCH), &etag) {
        return Ok(response.status(StatusCode::NOT_MODIFIED).finish());
    }
    if let Some(path) = patches::offload_path(&state, &sha256) {
        // Authorised here; the front nginx sends the bytes (with Range) from the same files.
        return Ok(response
            .content_type("application/octet-stream")
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", view.patch.filename),
            ))
            .insert_header(("x-accel-redirect", path))
            .finish());
    }
    let answer = if if_range_allows(text(header::IF_RANGE), &etag) {
        parse_range(text(header::RANGE), size)
    } else {
        RangeAnswer::Full
    };
    let (start, end) = match answer {
        RangeAnswer::Unsatisfiable => {
            return Ok(response
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .insert_header((header::CONTENT_RANGE, format!("bytes */{size}")))
                .finish());
        }
        RangeAnswer::Partial { start, end } => {
            response
                .status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            (start, end)
        }
        RangeAnswer::Full => (0, size.saturating_sub(1)),
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    response.content_type("application/octet-stream").insert_header((
        header::CONTENT_DISPOSITION,
        format!("attachment; filename=\"{}\"", view.patch.filename),
    ));
    if req.method() == Method::HEAD || length == 0 {
        // A sized, empty body: the headers announce the length, nothing is read.
        let nothing = futures_util::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
        return Ok(response.body(SizedStream::new(length, nothing)));
    }
    let stream = patches::read_range(&state, &sha256, start, end).await?;
    Ok(response.body(SizedStream::new(length, stream)))
}
