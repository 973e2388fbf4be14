//! Pulls over the API: `POST /api/v1/devices/{id}/pull` (pull now; answers with
//! what was observed), `PUT /api/v1/devices/{id}/pull` (where and when a device is
//! pulled; `{"url": null}` stops it), `GET`/`PUT /api/v1/pull-schedule` (the
//! customer's default schedule).

use actix_web::{web, HttpResponse};

use crate::api::events::{DefaultSchedule, PullSettingsDraft, PullStatusResponse};
use crate::auth::CustomerAdmin;
use crate::error::AppError;
use crate::services::pulls;
use crate::state::AppState;

pub async fn pull_device(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let result = pulls::pull_now(&state, &caller.0.scope, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(result))
}

pub async fn put_pull_settings(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
    body: web::Json<PullSettingsDraft>,
) -> Result<HttpResponse, AppError> {
    let pull = pulls::configure(&state, &caller.0.caller(), id.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(pull.as_ref().map(PullStatusResponse::from)))
}

pub async fn get_default_schedule(state: web::Data<AppState>, caller: CustomerAdmin) -> Result<HttpResponse, AppError> {
    let schedule = pulls::default_schedule(&state, &caller.0.caller()).await?;
    Ok(HttpResponse::Ok().json(DefaultSchedule {
        schedule: schedule.map(|s| s.as_str().to_owned()),
    }))
}

pub async fn put_default_schedule(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    body: web::Json<DefaultSchedule>,
) -> Result<HttpResponse, AppError> {
    let schedule = pulls::set_default_schedule(&state, &caller.0.caller(), body.into_inner().schedule).await?;
    Ok(HttpResponse::Ok().json(DefaultSchedule {
        schedule: schedule.map(|s| s.as_str().to_owned()),
    }))
}
