//! Writes the queued observations and offers: each observation folded into the
//! device's history, the device's last-seen time and running version moved on, each
//! offer recorded once. One transaction per batch; a batch that cannot be written
//! because the database is away goes back to the queue for the next flush.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::Connection;

use crate::db::models::{DeviceRecord, ObservationRecord, Offers, Seen};
use crate::db::DbConnection;
use crate::ids::DeviceId;
use crate::services::error::is_unique_violation;
use crate::services::{ServiceError, Services};

use super::observations::Batch;

fn write(conn: &mut DbConnection, batch: &Batch) -> Result<(), ServiceError> {
    conn.transaction(|conn| {
        let mut last_seen: HashMap<&DeviceId, NaiveDateTime> = HashMap::new();
        let mut running: HashMap<&DeviceId, &Seen> = HashMap::new();
        for seen in &batch.seen {
            ObservationRecord::record(conn, seen)?;
            let latest = last_seen.entry(&seen.device).or_insert(seen.last_seen_at);
            *latest = (*latest).max(seen.last_seen_at);
            if seen.source.shows_running() || seen.last_source.shows_running() {
                running.insert(&seen.device, seen);
            }
        }
        for (device, at) in last_seen {
            DeviceRecord::seen(conn, device, at)?;
        }
        for (device, seen) in running {
            let source = if seen.last_source.shows_running() {
                seen.last_source
            } else {
                seen.source
            };
            DeviceRecord::set_running(conn, device, &seen.version, seen.image_sha256.as_deref(), source)?;
        }
        for (device, patch, at) in &batch.offers {
            // Another instance may record the same offer at the same moment.
            match conn.transaction(|conn| Offers::record(conn, device, patch, *at)) {
                Err(err) if is_unique_violation(&err) => {}
                other => other?,
            }
        }
        Ok(())
    })
}

/// Writes what is queued; returns how many observations and offers it wrote.
pub async fn flush(services: &Services) -> Result<usize, ServiceError> {
    let batch = services.fleet.queue.take();
    if batch.is_empty() {
        return Ok(0);
    }
    let count = batch.len();
    let shared = Arc::new(batch);
    let work = shared.clone();
    let result = services.db.run(move |conn| write(conn, &work)).await;
    match result {
        Ok(()) => Ok(count),
        Err(err @ (ServiceError::Unavailable(_) | ServiceError::Down { .. })) => {
            // The closure has run or been dropped by now, so the batch is ours again.
            if let Ok(batch) = Arc::try_unwrap(shared) {
                services.fleet.queue.put_back(batch);
            }
            Err(err)
        }
        Err(err) => {
            tracing::error!(count, error = %err, "observations could not be written and are dropped");
            services.fleet.queue.count_lost(count);
            Err(err)
        }
    }
}
