//! The delivery job: claims due deliveries with a lease, sends them concurrently
//! and writes back how each went. A 2xx is delivered; anything else is tried again
//! after a wait that doubles, until the delivery's day is over.

use std::time::Duration;

use chrono::TimeDelta;
use futures_util::stream::{FuturesUnordered, StreamExt};

use crate::db::models::{now, Attempt, ClaimedDelivery, DeliveryRecord};
use crate::domain::network::AddressPolicy;
use crate::services::outbound::{check_url, read_capped, Failure};
use crate::services::{ServiceError, Services};

use super::{open_secret, retry_at};

/// Deliveries claimed at once.
const BATCH: i64 = 64;

async fn send(services: &Services, claimed: &ClaimedDelivery) -> (Option<i32>, Option<String>) {
    let policy: &AddressPolicy = &services.outbound.policy;
    let url = match check_url(&claimed.url, policy) {
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
    let _slot = services.outbound.host_slot(&url).await;
    let sent = services
        .outbound
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

/// Sends what is due; returns how many attempts were made.
pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    let holder = services.instance.clone();
    let lease = TimeDelta::from_std(services.config.webhook_timeout * 2 + Duration::from_secs(5))
        .map_err(|e| ServiceError::internal("lease", e))?;
    let first_retry = services.config.webhook_retry_delay;
    let mut total = 0;
    loop {
        let at = now();
        let claim_holder = holder.clone();
        let claimed = services
            .db
            .query(move |conn| DeliveryRecord::claim_due(conn, &claim_holder, at, at + lease, BATCH))
            .await?;
        if claimed.is_empty() {
            return Ok(total);
        }
        let count = claimed.len();
        let mut sending: FuturesUnordered<_> = claimed
            .iter()
            .map(|c| async move { (c, send(services, c).await) })
            .collect();
        let mut results = Vec::with_capacity(count);
        while let Some((claimed, (status, error))) = sending.next().await {
            let at = now();
            let retry = error
                .as_ref()
                .map(|_| retry_at(at, claimed.attempts, first_retry))
                .filter(|next| *next < claimed.give_up_at);
            if let Some(error) = &error {
                tracing::info!(delivery.id = %claimed.id, error = %error, retry = retry.is_some(), "webhook delivery failed");
            }
            results.push((
                claimed.id.clone(),
                Attempt {
                    at,
                    status,
                    error,
                    retry_at: retry,
                },
            ));
        }
        drop(sending);
        let write_holder = holder.clone();
        services
            .db
            .run(move |conn| {
                diesel::Connection::transaction(conn, |conn| {
                    for (id, attempt) in &results {
                        DeliveryRecord::finish(conn, &write_holder, id, attempt)?;
                    }
                    Ok::<_, ServiceError>(())
                })
            })
            .await?;
        total += count;
        if count < BATCH as usize {
            return Ok(total);
        }
    }
}
