//! Webhooks: customer admins subscribe HTTPS URLs to events; events are queued in
//! the database in the transaction of what caused them, and the delivery job sends
//! each to every subscribed webhook, signed as Standard Webhooks specifies
//! (`webhook-id`, `webhook-timestamp`, `webhook-signature`), until it succeeds or a
//! day has passed. The signing secret is shown once and kept sealed.

pub mod deliver;

use chrono::{NaiveDateTime, TimeDelta};
use serde::Deserialize;

use crate::db::models::{now, utc, Customer, DeliveryRecord, EventRecord, LoggedDelivery, WebhookRecord};
use crate::db::DbConnection;
use crate::domain::{Caller, EventType, EventTypes};
use crate::ids::{CustomerId, DeliveryId, WebhookId};
use crate::secrets::{webhook_secret, SealingKey};
use crate::services::refusals::{Cap, Refusal};
use crate::services::{ServiceError, Services};

/// How long a delivery is retried.
pub const RETRY_FOR: TimeDelta = TimeDelta::hours(24);
/// Deliveries a log shows.
pub const LOG_ROWS: i64 = 100;

/// What a sealed webhook secret is bound to.
pub fn secret_purpose(id: &WebhookId) -> String {
    format!("webhook_secret:{id}")
}

/// A webhook as a customer admin registers it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookDraft {
    pub url: String,
    pub events: Vec<String>,
}

/// A new event with its delivered body: `{"id", "type", "timestamp", "data"}`.
fn event(customer: &CustomerId, kind: EventType, data: serde_json::Value, dedupe: Option<String>) -> EventRecord {
    let at = now();
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let payload = serde_json::json!({
        "id": id,
        "type": kind.as_str(),
        "timestamp": utc(at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "data": data,
    });
    EventRecord {
        id,
        customer_id: customer.clone(),
        event_type: kind,
        payload: payload.to_string(),
        dedupe_key: dedupe,
        created_at: at,
    }
}

/// Queues an event for `customer`'s webhooks that subscribe to its type. With a
/// `dedupe` key, an event already queued under that key is not queued again.
/// Whether it was queued.
pub fn emit(
    conn: &mut DbConnection,
    customer: &CustomerId,
    kind: EventType,
    data: serde_json::Value,
    dedupe: Option<String>,
) -> Result<bool, ServiceError> {
    let event = event(customer, kind, data, dedupe);
    if !EventRecord::insert(conn, &event)? {
        return Ok(false);
    }
    for hook in WebhookRecord::of_customer(conn, customer)? {
        if hook.events.contains(kind) {
            DeliveryRecord::queue(
                conn,
                &hook.id,
                &event.id,
                event.created_at,
                event.created_at + RETRY_FOR,
            )?;
        }
    }
    Ok(true)
}

fn customer_of(caller: &Caller) -> Result<&CustomerId, ServiceError> {
    caller
        .scope
        .customer()
        .ok_or_else(|| ServiceError::Forbidden("webhooks belong to a customer's admins".into()))
}

fn parse_events(events: &[String]) -> Result<Vec<EventType>, ServiceError> {
    if events.is_empty() {
        return Err(ServiceError::invalid("events", "events must name at least one event"));
    }
    let mut parsed = Vec::new();
    for event in events {
        let kind = event
            .parse::<EventType>()
            .ok()
            .filter(|k| *k != EventType::Ping)
            .ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL
                    .iter()
                    .filter(|k| **k != EventType::Ping)
                    .map(|k| k.as_str())
                    .collect();
                ServiceError::invalid("events", format!("`{event}` is not an event ({})", known.join(", ")))
            })?;
        if !parsed.contains(&kind) {
            parsed.push(kind);
        }
    }
    Ok(parsed)
}

/// Registers a webhook for the caller's customer; returns it with its secret,
/// shown this once.
pub async fn register(
    services: &Services,
    caller: &Caller,
    draft: WebhookDraft,
) -> Result<(WebhookRecord, String), ServiceError> {
    let customer = customer_of(caller)?.clone();
    let url = services
        .webhook_outbound
        .check_url(&draft.url)
        .map_err(|why| ServiceError::invalid("url", format!("url {why}")))?;
    services
        .webhook_outbound
        .check_resolved(&url)
        .await
        .map_err(|why| ServiceError::invalid("url", format!("url {why}")))?;
    if url.scheme() != "https" && !services.config.webhooks_allow_http {
        return Err(ServiceError::invalid(
            "url",
            "url must be https (webhooks_allow_http is off)",
        ));
    }
    let events = parse_events(&draft.events)?;
    let secret = webhook_secret();
    let id = WebhookId::generate();
    let hook = WebhookRecord {
        secret_sealed: services.sealing.seal(&secret_purpose(&id), &secret),
        id,
        customer_id: customer,
        url: url.to_string(),
        events: EventTypes(events),
        created_by: caller.user.clone(),
        created_at: now(),
        deleted_at: None,
    };
    let stored = hook.clone();
    let registered = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                Customer::hold(conn, &stored.customer_id)?;
                let held = WebhookRecord::of_customer(conn, &stored.customer_id)?.len();
                Cap::Webhooks.check(i64::try_from(held).unwrap_or(i64::MAX))?;
                WebhookRecord::insert(conn, &stored)?;
                Ok(())
            })
        })
        .await;
    services.refusals.note_cap(registered)?;
    tracing::info!(webhook.id = %hook.id, user.id = %caller.user, "registered webhook");
    Ok((hook, secret))
}

/// The caller's customer's webhooks.
pub async fn list(services: &Services, caller: &Caller) -> Result<Vec<WebhookRecord>, ServiceError> {
    let customer = customer_of(caller)?.clone();
    Ok(services
        .db
        .query(move |conn| WebhookRecord::of_customer(conn, &customer))
        .await?)
}

fn own(conn: &mut DbConnection, customer: &CustomerId, id: &str) -> Result<WebhookRecord, ServiceError> {
    let not_found = || ServiceError::NotFound("webhook");
    let id: WebhookId = id.parse().map_err(|_| not_found())?;
    WebhookRecord::find(conn, &id)?
        .filter(|h| &h.customer_id == customer)
        .ok_or_else(not_found)
}

/// Deletes one of the caller's customer's webhooks.
pub async fn delete(services: &Services, caller: &Caller, id: String) -> Result<(), ServiceError> {
    let customer = customer_of(caller)?.clone();
    services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let hook = own(conn, &customer, &id)?;
                WebhookRecord::delete(conn, &hook.id, now())?;
                Ok::<_, ServiceError>(())
            })
        })
        .await?;
    tracing::info!(user.id = %caller.user, "deleted webhook");
    Ok(())
}

/// A webhook's delivery log, newest first.
pub async fn deliveries(
    services: &Services,
    caller: &Caller,
    id: String,
) -> Result<(WebhookRecord, Vec<LoggedDelivery>), ServiceError> {
    let customer = customer_of(caller)?.clone();
    services
        .db
        .run(move |conn| {
            let hook = own(conn, &customer, &id)?;
            let log = DeliveryRecord::log(conn, &hook.id, LOG_ROWS)?;
            Ok((hook, log))
        })
        .await
}

/// Queues a test event for one webhook.
pub async fn ping(services: &Services, caller: &Caller, id: String) -> Result<DeliveryId, ServiceError> {
    let customer = customer_of(caller)?.clone();
    spend(services, &customer)?;
    let user = caller.user.clone();
    services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let hook = own(conn, &customer, &id)?;
                let data = serde_json::json!({"webhook_id": hook.id, "requested_by": user});
                let ping = event(&customer, EventType::Ping, data, None);
                EventRecord::insert(conn, &ping)?;
                let at = ping.created_at;
                Ok(DeliveryRecord::queue(conn, &hook.id, &ping.id, at, at + RETRY_FOR)?)
            })
        })
        .await
}

/// Sends one delivery of a webhook of the caller's customer again, with the same
/// event id.
pub async fn send_again(
    services: &Services,
    caller: &Caller,
    id: String,
    delivery: String,
) -> Result<(), ServiceError> {
    let customer = customer_of(caller)?.clone();
    spend(services, &customer)?;
    services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let hook = own(conn, &customer, &id)?;
                let not_found = || ServiceError::NotFound("delivery");
                let delivery: DeliveryId = delivery.parse().map_err(|_| not_found())?;
                let found = DeliveryRecord::find(conn, &delivery)?
                    .filter(|d| d.webhook_id == hook.id)
                    .ok_or_else(not_found)?;
                let at = now();
                DeliveryRecord::send_again(conn, &found.id, at, at + RETRY_FOR)?;
                Ok::<_, ServiceError>(())
            })
        })
        .await
}

/// Spends one of the customer's webhook requests (pings, sends again) this minute.
fn spend(services: &Services, customer: &CustomerId) -> Result<(), ServiceError> {
    services
        .webhook_budgets
        .spend(customer)
        .map_err(|wait| services.refusals.rate_limited(Refusal::WebhookRate, wait))
}

/// Opens a webhook's sealed secret.
pub fn open_secret(sealing: &SealingKey, id: &WebhookId, sealed: &str) -> Option<String> {
    sealing.open(&secret_purpose(id), sealed)
}

/// The next try of a delivery that failed `attempts` times: the wait doubles from
/// `first`, with jitter, up to an hour.
pub fn retry_at(at: NaiveDateTime, attempts: i32, first: std::time::Duration) -> NaiveDateTime {
    let factor = 2f64.powi(attempts.clamp(0, 20));
    let wait = (first.as_secs_f64() * factor).min(3600.0) * crate::random::spread();
    at + TimeDelta::milliseconds((wait * 1000.0) as i64)
}

/// The caller's customer's webhooks, each with its latest deliveries (the
/// webhooks screen).
pub async fn overview(
    services: &Services,
    caller: &Caller,
) -> Result<Vec<(WebhookRecord, Vec<LoggedDelivery>)>, ServiceError> {
    let customer = customer_of(caller)?.clone();
    services
        .db
        .run(move |conn| {
            let mut hooks = Vec::new();
            for hook in WebhookRecord::of_customer(conn, &customer)? {
                let log = DeliveryRecord::log(conn, &hook.id, 20)?;
                hooks.push((hook, log));
            }
            Ok(hooks)
        })
        .await
}
