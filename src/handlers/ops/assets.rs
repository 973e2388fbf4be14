//! The page assets and the OpenAPI description, embedded in the binary.

use actix_web::HttpResponse;

use crate::templates::{STYLESHEET, UPLOAD_SCRIPT};

pub async fn get_stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(STYLESHEET)
}

pub async fn get_upload_script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "public, max-age=3600"))
        .body(UPLOAD_SCRIPT)
}

/// The OpenAPI description of every `/api/v1` route.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

pub async fn get_openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("cache-control", "public, max-age=300"))
        .body(OPENAPI)
}
