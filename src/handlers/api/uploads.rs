//! Resumable uploads over the API, for files too large to send in one request over
//! an unreliable link: `POST` declares the size, `HEAD`/`GET` report the offset the
//! server holds (`Upload-Offset`, `Upload-Length`), `PATCH` appends from that offset
//! (`Content-Type: application/offset+octet-stream`), `DELETE` cancels. The request
//! that delivers the last byte stores the file, as `PUT …/file` would.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::api::patches::{BeginUpload, StoredFileResponse, UploadResponse};
use crate::auth::VendorUser;
use crate::db::models::PatchUpload;
use crate::error::AppError;
use crate::http::extract::declared_length;
use crate::services::patches::uploads::{self, Progress};
use crate::state::AppState;

/// The media type of a `PATCH` body: raw bytes that continue the file at an offset.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

fn with_offsets<'a>(response: &'a mut HttpResponseBuilder, upload: &PatchUpload) -> &'a mut HttpResponseBuilder {
    response
        .insert_header(("upload-offset", upload.received.to_string()))
        .insert_header(("upload-length", upload.size.to_string()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
}

/// `POST /api/v1/patches/{id}/upload` `{"size", "sha256"?}`: starts a resumable
/// upload, in place of any earlier one of the same draft.
pub async fn begin_upload(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Json<BeginUpload>,
) -> Result<HttpResponse, AppError> {
    let upload = uploads::start(
        &state,
        &caller.0.caller(),
        id.into_inner(),
        body.size,
        body.sha256.as_deref(),
    )
    .await?;
    let described = UploadResponse::of(&state.config, &upload);
    Ok(with_offsets(&mut HttpResponse::Created(), &upload)
        .insert_header((header::LOCATION, described.upload_url.clone()))
        .json(described))
}

/// `GET` and `HEAD /api/v1/patches/{id}/upload`: how far the upload got.
pub async fn get_upload(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let upload = uploads::progress(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(with_offsets(&mut HttpResponse::Ok(), &upload).json(UploadResponse::of(&state.config, &upload)))
}

fn offset_header(req: &HttpRequest) -> Result<u64, AppError> {
    let value = req.headers().get("upload-offset").ok_or_else(|| {
        AppError::BadRequest("the Upload-Offset header is required: the byte offset this body starts at".into())
    })?;
    value
        .to_str()
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or_else(|| AppError::BadRequest("the Upload-Offset header is not a byte offset".into()))
}

/// `PATCH /api/v1/patches/{id}/upload`: appends the body at `Upload-Offset`.
pub async fn append_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
    body: web::Payload,
) -> Result<HttpResponse, AppError> {
    let media_type = req.headers().get(header::CONTENT_TYPE).map(HeaderValue::as_bytes);
    if media_type != Some(OFFSET_OCTET_STREAM.as_bytes()) {
        return Err(AppError::UnsupportedMediaType(format!(
            "the body of an upload request is sent as {OFFSET_OCTET_STREAM}"
        )));
    }
    let offset = offset_header(&req)?;
    let (patch, progress) = uploads::resume(
        &state,
        &caller.0.caller(),
        id.into_inner(),
        offset,
        declared_length(&req),
        body,
    )
    .await?;
    match progress {
        Progress::Partial {
            upload,
            interrupted: None,
        } => Ok(with_offsets(&mut HttpResponse::NoContent(), &upload).finish()),
        Progress::Partial {
            upload,
            interrupted: Some(reason),
        } => Err(AppError::BadRequest(format!(
            "the body broke off ({reason}); the upload holds {} bytes, resume from there",
            upload.received
        ))),
        Progress::Complete(stored) => Ok(HttpResponse::Ok().json(StoredFileResponse::of(&patch, stored))),
    }
}

/// `DELETE /api/v1/patches/{id}/upload`: cancels the upload and removes its bytes.
pub async fn cancel_upload(
    state: web::Data<AppState>,
    caller: VendorUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    uploads::abandon(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
