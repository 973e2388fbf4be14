//! The delivery job: claims due deliveries with a lease, fairly between customers,
//! sends each on its own and writes back how each went. A 2xx is delivered; anything else is tried again
//! after a wait that doubles, until the delivery's day is over.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::db::models::{now, Attempt, ClaimedDelivery, DeliveryRecord};
use crate::ids::CustomerId;
use crate::services::budget::Shares;
use crate::services::outbound::{read_capped, Failure};
use crate::services::{ServiceError, Services};

use super::{open_secret, retry_at};

/// Deliveries in flight at once on this instance.
const IN_FLIGHT: usize = 64;
/// Deliveries of one customer in flight at once on this instance.
pub const PER_CUSTOMER: usize = 8;
/// How often due deliveries are looked for while others are in flight.
const CLAIM_EVERY: Duration = Duration::from_millis(100);

async fn send(services: &Services, claimed: &ClaimedDelivery) -> (Option<i32>, Option<String>) {
    let url = match services.webhook_outbound.check_url(&claimed.url) {
        Ok(url) => url,
        Err(why) => return (None, Some(format!("denied_address: url {why}"))),
    };
    if url.scheme() != "https" && !services.config.webhooks_allow_http {
        return (None, Some("the URL is not https and webhooks_allow_http is off".into()));
    }
    let Some(secret) = open_secret(&services.sealing, &claimed.webhook_id, &claimed.secret_sealed) else {
        return (
            None,
            Some("the webhook's secret cannot be opened with this server's key".into()),
        );
    };
    let timestamp = chrono::Utc::now().timestamp();
    let body = claimed.payload.as_bytes();
    let Some(signature) = crate::secrets::webhook_signature(&secret, &claimed.event_id, timestamp, body) else {
        return (None, Some("the webhook's secret is malformed".into()));
    };
    let _slot = services.webhook_outbound.host_slot(&url).await;
    let sent = services
        .webhook_outbound
        .client
        .post(url)
        .timeout(services.config.webhook_timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &claimed.event_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(claimed.payload.clone())
        .send()
        .await;
    match sent {
        Err(err) => {
            let failure = Failure::of(&err);
            (None, Some(format!("{}: {}", failure.reason, failure.detail)))
        }
        Ok(response) => {
            let status = response.status();
            // The body is read (a little of it) so the connection can be reused.
            let _ = read_capped(response, 4096).await;
            if status.is_success() {
                (Some(i32::from(status.as_u16())), None)
            } else {
                (
                    Some(i32::from(status.as_u16())),
                    Some(format!("HTTP {}", status.as_u16())),
                )
            }
        }
    }
}

/// Sends what is due, each delivery on its own: claimed in turns between customers,
/// at most [`PER_CUSTOMER`] of a customer's in flight at once, and claimed again as
/// slots free, so a customer whose receivers are slow (or a tarpit) holds up only
/// its own deliveries. Each delivery writes its outcome when it ends. Returns how
/// many attempts were made.
pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    let holder = services.instance.as_str();
    let lease = TimeDelta::from_std(services.config.webhook_timeout * 2 + Duration::from_secs(5))
        .map_err(|e| ServiceError::internal("lease", e))?;
    let mut sending = FuturesUnordered::new();
    let mut in_flight = Shares::new(PER_CUSTOMER);
    let mut total = 0;
    let mut nothing_due = false;
    let mut last_claim: Option<Instant> = None;
    loop {
        let room = IN_FLIGHT.saturating_sub(sending.len());
        let claim_now = !nothing_due || last_claim.is_none_or(|at| at.elapsed() >= CLAIM_EVERY);
        if room > 0 && claim_now {
            let (per_customer, full) = in_flight.claim_limits();
            let claim_holder = holder.to_owned();
            let at = now();
            let claimed = services
                .db
                .query(move |conn| {
                    DeliveryRecord::claim_due(conn, &claim_holder, at, at + lease, room as i64, per_customer, &full)
                })
                .await?;
            last_claim = Some(Instant::now());
            nothing_due = claimed.len() < room;
            for delivery in claimed {
                in_flight.started(&delivery.customer_id);
                sending.push(deliver(services, holder, delivery));
            }
        }
        if sending.is_empty() {
            return Ok(total);
        }
        // One ends, or the claim period passes (deliveries may have fallen due).
        if let Ok(Some((customer, written))) = tokio::time::timeout(CLAIM_EVERY, sending.next()).await {
            total += 1;
            in_flight.ended(&customer);
            written?;
        }
    }
}

/// Sends one delivery and writes how it went; its customer, for the count in flight.
async fn deliver(
    services: &Services,
    holder: &str,
    claimed: ClaimedDelivery,
) -> (CustomerId, Result<(), ServiceError>) {
    let (status, error) = send(services, &claimed).await;
    let at = now();
    let retry = error
        .as_ref()
        .map(|_| retry_at(at, claimed.attempts, services.config.webhook_retry_delay))
        .filter(|next| *next < claimed.give_up_at);
    if let Some(error) = &error {
        tracing::info!(delivery.id = %claimed.id, error = %error, retry = retry.is_some(), "webhook delivery failed");
    }
    let attempt = Attempt {
        at,
        status,
        error,
        retry_at: retry,
    };
    let (holder, id) = (holder.to_owned(), claimed.id.clone());
    let written = services
        .db
        .run(move |conn| Ok::<_, ServiceError>(DeliveryRecord::finish(conn, &holder, &id, &attempt)?))
        .await;
    (claimed.customer_id, written)
}
