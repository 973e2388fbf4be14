//! Writes the queued observations and offers in one transaction per batch. The
//! common case — a device seen again running what its latest history row says — is
//! written in bulk: the batch's devices' latest rows are read in a few queries, and
//! the rows and last-seen times are moved on with one statement per distinct time.
//! A changed version or image gets a row of its own, and moves the device's
//! running version when a poll, pull or administrator (not a report) showed it. A
//! batch that cannot be written because the database is away goes back to the queue.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::db::models::{DeviceRecord, Generations, Latest, ObservationRecord, Offers, Seen};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::ObservationSource;
use crate::ids::{DeviceId, ObservationId};
use crate::services::anomalies::{self, Change};
use crate::services::log;
use crate::services::{ServiceError, Services};

use super::observations::Batch;
use crate::domain::fleet::HeadReport;

/// Ids per statement, within the bind-parameter limits of both backends.
const CHUNK: usize = 10_000;

/// Writes `batch` (observations of polls or pulls, offers), flagging anomalies in
/// the changes it holds.
pub fn write(conn: &mut DbConnection, batch: &Batch) -> Result<(), ServiceError> {
    conn.write_transaction(|conn| {
        let devices: Vec<&DeviceId> = {
            let mut unique = HashSet::new();
            batch
                .seen
                .iter()
                .map(|s| &s.device)
                .filter(|d| unique.insert(*d))
                .collect()
        };
        let mut latest: HashMap<DeviceId, Latest> = HashMap::with_capacity(devices.len());
        for chunk in devices.chunks(CHUNK) {
            latest.extend(
                ObservationRecord::latest_of(conn, chunk)?
                    .into_iter()
                    .map(|l| (l.device.clone(), l)),
            );
        }

        let mut folds: HashMap<(NaiveDateTime, i64, ObservationSource), Vec<&ObservationId>> = HashMap::new();
        let mut changed: HashSet<&DeviceId> = HashSet::new();
        let mut new_rows: Vec<&Seen> = Vec::new();
        let mut running: HashMap<&DeviceId, &Seen> = HashMap::new();
        let mut last_seen: HashMap<&DeviceId, NaiveDateTime> = HashMap::new();
        for seen in &batch.seen {
            let same_row = latest
                .get(&seen.device)
                .filter(|_| !changed.contains(&seen.device))
                .filter(|l| l.version == seen.version && l.image_sha256 == seen.image_sha256);
            match same_row {
                Some(l) => folds
                    .entry((seen.last_seen_at, seen.times, seen.last_source))
                    .or_default()
                    .push(&l.row),
                None => {
                    changed.insert(&seen.device);
                    new_rows.push(seen);
                }
            }
            if seen.source.shows_running() || seen.last_source.shows_running() {
                running.insert(&seen.device, seen);
            }
            let at = last_seen.entry(&seen.device).or_insert(seen.last_seen_at);
            *at = (*at).max(seen.last_seen_at);
        }

        for ((at, times, source), rows) in &folds {
            for chunk in rows.chunks(CHUNK) {
                ObservationRecord::fold(conn, chunk, *at, *times, *source)?;
            }
        }
        let mut running_now: HashMap<&DeviceId, Option<&str>> = HashMap::new();
        let mut changes = Vec::new();
        // The log records a device's version when it changes, not every image it
        // shows under one version: a device cannot grow the public log by sending
        // made-up image hashes (those raise an anomaly, which counts its repeats).
        let mut logged_version: HashMap<&DeviceId, Option<&str>> = HashMap::new();
        let logged: Vec<&Seen> = new_rows
            .iter()
            .copied()
            .filter(|seen| {
                let before = logged_version
                    .entry(&seen.device)
                    .or_insert_with(|| latest.get(&seen.device).map(|l| l.version.as_str()));
                let changed = *before != Some(seen.version.as_str());
                *before = Some(seen.version.as_str());
                changed
            })
            .collect();
        // The new rows in bulk; each device's last one becomes its latest.
        let history: Vec<(ObservationId, &Seen)> = new_rows.iter().map(|s| (ObservationId::generate(), *s)).collect();
        let rows: Vec<(&ObservationId, &Seen)> = history.iter().map(|(id, seen)| (id, *seen)).collect();
        ObservationRecord::insert_all(conn, &rows)?;
        let newest: HashMap<&DeviceId, &ObservationId> = rows.iter().map(|(id, seen)| (&seen.device, *id)).collect();
        let newest: Vec<(&DeviceId, &ObservationId)> = newest.into_iter().collect();
        DeviceRecord::set_latest_rows(conn, &newest)?;
        for seen in new_rows {
            if matches!(seen.source, ObservationSource::Poll | ObservationSource::Pull) {
                let previous = running_now
                    .entry(&seen.device)
                    .or_insert_with(|| latest.get(&seen.device).and_then(|l| l.running_version.as_deref()));
                changes.push(Change {
                    previous: *previous,
                    seen,
                });
                *previous = Some(seen.version.as_str());
            }
        }
        anomalies::inspect(conn, &changes)?;
        let mut moved: HashMap<(&str, Option<&str>, ObservationSource), Vec<&DeviceId>> = HashMap::new();
        for (device, seen) in running {
            let source = if seen.last_source.shows_running() {
                seen.last_source
            } else {
                seen.source
            };
            let recorded = latest.get(device).is_some_and(|l| {
                l.running_version.as_deref() == Some(seen.version.as_str())
                    && l.running_image == seen.image_sha256
                    && l.running_source.as_deref() == Some(source.as_str())
            });
            if !recorded {
                moved
                    .entry((seen.version.as_str(), seen.image_sha256.as_deref(), source))
                    .or_default()
                    .push(device);
            }
        }
        for ((version, image, source), devices) in &moved {
            for chunk in devices.chunks(CHUNK) {
                DeviceRecord::set_running(conn, chunk, version, *image, *source)?;
            }
        }
        let mut by_time: HashMap<NaiveDateTime, Vec<&DeviceId>> = HashMap::new();
        for (device, at) in last_seen {
            by_time.entry(at).or_default().push(device);
        }
        for (at, devices) in by_time {
            for chunk in devices.chunks(CHUNK) {
                DeviceRecord::seen(conn, chunk, at)?;
            }
        }

        for (device, patch, at) in &batch.offers {
            Offers::record(conn, device, patch, *at)?;
        }
        write_head_reports(conn, &batch.heads)?;
        // The observations' entries, queued to commit with them.
        let logged_devices: Vec<&DeviceId> = {
            let mut unique = HashSet::new();
            logged.iter().map(|s| &s.device).filter(|d| unique.insert(*d)).collect()
        };
        let records: HashMap<DeviceId, DeviceRecord> = DeviceRecord::find_many(conn, &logged_devices)?
            .into_iter()
            .map(|d| (d.id.clone(), d))
            .collect();
        let mut found = Vec::with_capacity(logged.len());
        for seen in logged {
            if let Some(device) = records.get(&seen.device) {
                found.push((observed(device, seen), Actor::Device(device.id.clone())));
            }
        }
        if !found.is_empty() {
            let events: Vec<(&Event, &Actor)> = found.iter().map(|(event, actor)| (event, actor)).collect();
            log::append_all(conn, &events)?;
        }
        Ok(())
    })
}

/// Records what devices said of their view of the log: a device that turns stale is
/// marked and flagged (a `device_stale` anomaly and a `device.stale` event), one that
/// holds a genuine head again is unmarked. A change is counted as a device change,
/// so every instance's copy learns whether a device is stale.
fn write_head_reports(conn: &mut DbConnection, reports: &[(DeviceId, HeadReport)]) -> Result<(), ServiceError> {
    let mut change = None;
    let mut seq = |conn: &mut DbConnection| match change {
        Some(seq) => Ok(seq),
        None => {
            let seq = Generations::next_device_change(conn)?;
            change = Some(seq);
            Ok(seq)
        }
    };
    for (device, report) in reports {
        let age = report.head_age_s.map(|a| i64::try_from(a).unwrap_or(i64::MAX));
        if report.stale {
            if DeviceRecord::mark_stale(conn, device, age, report.at, &mut seq)? {
                if let Some(record) = DeviceRecord::find(conn, device)? {
                    anomalies::stale(conn, &record, report)?;
                }
            }
        } else {
            DeviceRecord::mark_fresh(conn, device, age, &mut seq)?;
        }
    }
    Ok(())
}

/// The log entry of a version a device was seen running, the first time it is
/// seen: the observations that show a device fixed, sealed for its customer.
fn observed(device: &DeviceRecord, seen: &Seen) -> Event {
    Event::FixObserved {
        customer: device.customer_id.clone(),
        device: device.id.clone(),
        version: seen.version.clone(),
        image_sha256: seen.image_sha256.clone(),
        source: seen.source,
        seen_at: seen.first_seen_at.and_utc(),
    }
}

/// Observations (and offers) written per transaction: what a flush holds in memory
/// besides the queue is bounded by it, however far the queue has grown. Kept small
/// (with 20,000 a million-device poll load grew the server by ~600 MiB of batch
/// memory the allocator kept). Batches are written on the database's background
/// lane, below the priority of the threads answering polls: under a poll load
/// the queue waits (folding repeats, 40 bytes an observation) rather than the
/// polls.
const FLUSH_BATCH: usize = 5_000;

/// Writes what is queued, in batches, until what was waiting when it started is
/// written; returns how many observations, offers and head reports it wrote.
pub async fn flush(services: &Services) -> Result<usize, ServiceError> {
    let _one_at_a_time = services.fleet.flushing().await;
    let due = services.fleet.queue.len();
    let mut written = 0;
    loop {
        let count = flush_batch(services).await?;
        written += count;
        if count == 0 || written >= due {
            return Ok(written);
        }
    }
}

/// Writes one batch of what is queued, on the background lane; how many it wrote.
async fn flush_batch(services: &Services) -> Result<usize, ServiceError> {
    let batch = services.fleet.queue.take(FLUSH_BATCH);
    if batch.is_empty() {
        return Ok(0);
    }
    let count = batch.len();
    let shared = Arc::new(batch);
    let work = shared.clone();
    let result = services.db.run_background(move |conn| write(conn, &work)).await;
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
