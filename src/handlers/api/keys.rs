//! Signing keys: `GET /api/v1/keys` lists every public key with its validity and the
//! rotation statement that introduced it; `GET /api/v1/keys/{key_id}` serves one as
//! the `.pub` file the `minisign` tool reads.

use actix_web::{web, HttpResponse};

use crate::api::device::KeyResponse;
use crate::error::AppError;
use crate::services::keys;
use crate::state::AppState;

pub async fn list_keys(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let keys = keys::list(&state).await?;
    let body: Vec<KeyResponse> = keys.into_iter().map(KeyResponse::from).collect();
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=300"))
        .json(body))
}

pub async fn get_key(state: web::Data<AppState>, key_id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let key_id = key_id.into_inner().trim_end_matches(".pub").to_uppercase();
    let key = keys::find(&state, key_id).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header((
            "content-disposition",
            format!("attachment; filename=\"{}.pub\"", key.key_id),
        ))
        .body(key.public_key))
}
