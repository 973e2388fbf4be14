//! The transparency log, public: `GET /api/v1/log/head` (the newest signed tree
//! head, its checkpoint a C2SP signed note), `…/checkpoint` (that note as text), `…/heads?before=&limit=` (those kept, newest first), `…/entries?start=&end=` (at most 1000 per answer, `end` exclusive),
//! `…/proof/inclusion?index=&tree_size=` and `…/proof/consistency?from=&to=`
//! (hex hashes in RFC 9162 order, for sizes a signed head covers), and the tree as
//! C2SP tiles, `…/tile/<L>/<N>[.p/<W>]` and `…/tile/entries/<N>[.p/<W>]`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::domain::tiles::TilePath;
use crate::error::AppError;
use crate::services::log;
use crate::state::AppState;

pub async fn get_head(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let head = log::head(&state).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-cache"))
        .json(head))
}

/// `GET /api/v1/log/checkpoint`: the newest checkpoint as a C2SP signed note, with
/// the witnesses' cosignatures.
pub async fn get_checkpoint(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let note = log::checkpoint(&state).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "no-cache"))
        .content_type("text/plain; charset=utf-8")
        .body(note))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadsQuery {
    #[serde(default)]
    before: Option<u64>,
    #[serde(default = "default_heads")]
    limit: u32,
}

fn default_heads() -> u32 {
    20
}

/// `GET /api/v1/log/heads?before=&limit=`: the signed heads kept, newest first.
pub async fn get_heads(state: web::Data<AppState>, query: web::Query<HeadsQuery>) -> Result<HttpResponse, AppError> {
    let heads = log::history(&state, query.before, query.limit).await?;
    Ok(HttpResponse::Ok().json(heads))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    #[serde(default)]
    start: u64,
    #[serde(default)]
    end: Option<u64>,
}

pub async fn get_entries(
    state: web::Data<AppState>,
    query: web::Query<EntriesQuery>,
) -> Result<HttpResponse, AppError> {
    if query.end.is_some_and(|end| end < query.start) {
        return Err(AppError::invalid("end", "end must not be below start"));
    }
    let page = log::entries(&state, query.start, query.end).await?;
    Ok(HttpResponse::Ok().json(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    index: u64,
    tree_size: u64,
}

pub async fn get_inclusion_proof(
    state: web::Data<AppState>,
    query: web::Query<InclusionQuery>,
) -> Result<HttpResponse, AppError> {
    let proof = log::inclusion(&state, query.index, query.tree_size).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=86400, immutable"))
        .json(proof))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    from: u64,
    to: u64,
}

pub async fn get_consistency_proof(
    state: web::Data<AppState>,
    query: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, AppError> {
    let proof = log::consistency(&state, query.from, query.to).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("cache-control", "public, max-age=86400, immutable"))
        .json(proof))
}

/// `GET /api/v1/log/tile/…`: a C2SP tile or entry bundle. A full one never
/// changes and is cached for a year; a partial one for an hour.
pub async fn get_tile(state: web::Data<AppState>, tail: web::Path<String>) -> Result<HttpResponse, AppError> {
    let path = TilePath::parse(&tail).map_err(|e| AppError::BadRequest(format!("tile path: {e}")))?;
    let bytes = log::tile(&state, path).await?;
    let cache = if path.width.is_none() {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    Ok(HttpResponse::Ok()
        .content_type("application/octet-stream")
        .insert_header(("cache-control", cache))
        .body(bytes))
}
