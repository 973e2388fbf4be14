//! The fleet over the API: `POST /api/v1/devices` (enrol; the token is in this
//! answer only), `GET /api/v1/devices` (filter by advisory and state, label,
//! version; the vendor also by customer), `GET /api/v1/devices/{id}` (with its
//! version history and reports), `DELETE /api/v1/devices/{id}` (decommission).

use actix_web::{web, HttpResponse};

use crate::api::fleet::{
    DeviceDetailResponse, DeviceDraft, DeviceList, DeviceResponse, EnrolledResponse, ExposedDeviceResponse, FleetQuery,
};
use crate::auth::{AuthUser, CustomerAdmin};
use crate::error::AppError;
use crate::services::fleet::devices::{self, ListQuery};
use crate::services::fleet::exposure;
use crate::state::AppState;

pub async fn create_device(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    body: web::Json<DeviceDraft>,
) -> Result<HttpResponse, AppError> {
    let enrolled = devices::enrol(&state, &caller.0.caller(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(EnrolledResponse::of(&enrolled)?))
}

pub async fn list_devices(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<FleetQuery>,
) -> Result<HttpResponse, AppError> {
    let (page, per_page) = query.paging()?;
    let devices = match &query.advisory {
        Some(advisory) => {
            let exposure = exposure::exposure(&state, &caller.scope, advisory.clone(), query.exposure(false)?).await?;
            let total = exposure.matching;
            let devices = exposure
                .devices
                .iter()
                .map(|d| ExposedDeviceResponse::of(d).map(|r| r.device))
                .collect::<Result<_, _>>()?;
            DeviceList {
                devices,
                total,
                page,
                per_page,
            }
        }
        None => {
            let list = ListQuery {
                customer: query.customer.clone(),
                label: query.label()?,
                version: query.version.clone(),
                page,
                per_page,
                keyset: None,
            };
            let (rows, total) = devices::list(&state, &caller.scope, list).await?;
            DeviceList {
                devices: rows
                    .iter()
                    .map(|(d, customer, product)| DeviceResponse::of(d, customer, product))
                    .collect::<Result<_, _>>()?,
                total,
                page,
                per_page,
            }
        }
    };
    Ok(HttpResponse::Ok().json(devices))
}

pub async fn get_device(
    state: web::Data<AppState>,
    caller: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let detail = devices::detail(&state, &caller.scope, id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(DeviceDetailResponse::of(&detail)?))
}

pub async fn delete_device(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    devices::decommission(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
