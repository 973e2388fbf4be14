//! Webhooks of the caller's customer: `POST /api/v1/webhooks` `{"url","events"}`
//! (the secret is in this answer only), `GET` the list, `DELETE …/{id}`,
//! `GET …/{id}/deliveries` (the log), `POST …/{id}/ping` (a test event) and
//! `POST …/{id}/deliveries/{delivery}/retry` (send again, same event id).

use actix_web::{web, HttpResponse};

use crate::api::events::{DeliveryList, DeliveryResponse, WebhookDraft, WebhookList, WebhookResponse};
use crate::auth::CustomerAdmin;
use crate::error::AppError;
use crate::services::webhooks;
use crate::state::AppState;

pub async fn create_webhook(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    body: web::Json<WebhookDraft>,
) -> Result<HttpResponse, AppError> {
    let (hook, secret) = webhooks::register(&state, &caller.0.caller(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(WebhookResponse::of(&hook, Some(&secret))))
}

pub async fn list_webhooks(state: web::Data<AppState>, caller: CustomerAdmin) -> Result<HttpResponse, AppError> {
    let hooks = webhooks::list(&state, &caller.0.caller()).await?;
    Ok(HttpResponse::Ok().json(WebhookList {
        webhooks: hooks.iter().map(|h| WebhookResponse::of(h, None)).collect(),
    }))
}

pub async fn delete_webhook(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    webhooks::delete(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn list_deliveries(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let (_, log) = webhooks::deliveries(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::Ok().json(DeliveryList {
        deliveries: log.iter().map(DeliveryResponse::from).collect(),
    }))
}

pub async fn ping_webhook(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let delivery = webhooks::ping(&state, &caller.0.caller(), id.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "delivery_id": delivery })))
}

pub async fn retry_delivery(
    state: web::Data<AppState>,
    caller: CustomerAdmin,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, delivery) = path.into_inner();
    webhooks::send_again(&state, &caller.0.caller(), id, delivery).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "queued": true })))
}
