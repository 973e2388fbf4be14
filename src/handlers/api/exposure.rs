//! `GET /api/v1/advisories/{id}/exposure` and `…/exposure.csv`: where each device
//! stands against a published advisory. A customer admin sees its own fleet; the
//! vendor sees every customer, grouped (or one, with `?customer=`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::api::fleet::{exposure_csv, ExposureResponse, FleetQuery};
use crate::auth::AuthUser;
use crate::error::AppError;
use crate::services::fleet::exposure;
use crate::state::AppState;

pub async fn get_exposure(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.exposure(false)?;
    let found = exposure::exposure(&state, &caller.scope, id.into_inner(), query.clone()).await?;
    Ok(HttpResponse::Ok().json(ExposureResponse::of(&found, &query)?))
}

pub async fn get_exposure_csv(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, AppError> {
    let query = query.exposure(true)?;
    let found = exposure::exposure(&state, &caller.scope, id.into_inner(), query).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-exposure.csv\"", found.public_id),
        ))
        .body(exposure_csv(&found)))
}
