//! Anomaly flags: `GET /api/v1/anomalies?state=open|acknowledged|all` (a customer
//! admin its own, the vendor all) and `POST /api/v1/anomalies/{id}/ack`
//! `{"comment"}` (a customer admin, its own).

use actix_web::{web, HttpResponse};

use crate::api::events::{Acknowledgement, AnomalyList, AnomalyQuery, AnomalyResponse};
use crate::auth::{AuthUser, CustomerAdmin};
use crate::error::AppError;
use crate::services::anomalies;
use crate::state::AppState;

pub async fn list_anomalies(
    state: web::Data<AppState>,
    caller: AuthUser,
    query: web::Query<AnomalyQuery>,
) -> Result<HttpResponse, AppError> {
    let listed = anomalies::list(&state, &caller.scope, query.open()?, None).await?;
    Ok(HttpResponse::Ok().json(AnomalyList {
        anomalies: listed.iter().map(AnomalyResponse::from).collect(),
    }))
}

pub async fn acknowledge_anomaly(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
    body: web::Json<Acknowledgement>,
) -> Result<HttpResponse, AppError> {
    let anomaly = anomalies::acknowledge(&state, &caller.0.caller(), id.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(AnomalyResponse::from(&anomaly)))
}
