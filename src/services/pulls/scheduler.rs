//! The pull scheduler. Due pulls are claimed in batches with a lease (so two
//! instances never pull the same device, and a dead instance's claims are taken
//! over when they expire), run concurrently up to `pull_concurrency` with at most
//! `pull_per_host` per host, and written back in batches as they finish: a slow
//! device holds its own slot, never the others. A device that keeps failing is put
//! off further each time (see [`super::backoff`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use url::Url;

use crate::db::models::observation::to_the_second;
use crate::db::models::{now, Claimed, DevicePull, Product, PullDone, Seen};
use crate::db::schema::devices;
use crate::db::DbConnection;
use crate::domain::schedule::Schedule;
use crate::domain::{ObservationSource, PullFailure};
use crate::ids::{CustomerId, DeviceId, ProductId};
use crate::services::budget::Shares;
use crate::services::fleet::flush;
use crate::services::fleet::observations::Batch;
use crate::services::outbound::Failure;
use crate::services::{ServiceError, Services};

use super::fetch::{self, Reading};
use super::{backoff, token_purpose, FailureView, PullResult};
use crate::domain::fleet::HeadReport;

/// How long results wait to be written together.
const WRITE_EVERY: Duration = Duration::from_millis(50);
/// Most pulls claimed in one statement.
const CLAIM_MAX: usize = 2_000;

/// Pulls this instance made, by outcome (for the metrics).
#[derive(Default)]
pub struct PullCounts {
    pub succeeded: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
}

/// A pull that ended.
pub struct Finished {
    /// The claim it was made under.
    pub holder: Arc<str>,
    pub device: DeviceId,
    pub at: NaiveDateTime,
    /// When the schedule wants the next pull (before any backoff).
    pub next_due: Option<NaiveDateTime>,
    pub failures_before: i32,
    pub outcome: Result<Reading, Failure>,
    /// Whether a failure moves the next pull back (scheduled pulls do; a pull on
    /// demand leaves the schedule alone).
    pub rescheduled: bool,
}

/// A fresh name for one claim: this instance and a nonce, so that a result that
/// comes back after its lease ran out (and the device was claimed again, even by
/// this instance) is not written over the new claim's.
pub fn claim_name(services: &Services) -> String {
    format!("{}:{}", services.instance, uuid::Uuid::now_v7().simple())
}

/// How long a claim holds: long enough for every try of a pull.
pub fn lease(services: &Services) -> Result<TimeDelta, ServiceError> {
    TimeDelta::from_std(services.config.pulls.lease).map_err(|e| ServiceError::internal("lease", e))
}

/// Reads the versions in `finished` in their product's scheme (a version the
/// scheme does not know is a bad answer), writes readings as observations and
/// failures into the history, and releases the leases.
fn write_finished(
    conn: &mut DbConnection,
    backoff_max: Duration,
    finished: Vec<Finished>,
) -> Result<Vec<PullResult>, ServiceError> {
    let ids: Vec<&DeviceId> = finished.iter().map(|f| &f.device).collect();
    let mut product_of: HashMap<DeviceId, ProductId> = HashMap::new();
    for chunk in ids.chunks(10_000) {
        product_of.extend(
            devices::table
                .filter(devices::id.eq_any(chunk))
                .select((devices::id, devices::product_id))
                .load::<(DeviceId, ProductId)>(conn)?,
        );
    }
    let mut products: HashMap<ProductId, Option<Product>> = HashMap::new();
    for product in product_of.values() {
        if !products.contains_key(product) {
            products.insert(product.clone(), Product::find(conn, product)?);
        }
    }
    let mut seen = Vec::new();
    let mut heads = Vec::new();
    let mut done: HashMap<Arc<str>, Vec<PullDone>> = HashMap::new();
    let mut results = Vec::with_capacity(finished.len());
    for f in finished {
        let scheme = product_of
            .get(&f.device)
            .and_then(|p| products.get(p).cloned().flatten())
            .map(|p| p.scheme());
        let outcome = match (f.outcome, scheme) {
            (Ok(reading), Some(scheme)) => match scheme.parse(&reading.version) {
                Ok(version) => Ok(Reading {
                    version: version.to_string(),
                    ..reading
                }),
                Err(_) => Err(Failure::new(
                    PullFailure::BadJson,
                    format!("the version answered is not a {scheme} version"),
                )),
            },
            (outcome, _) => outcome,
        };
        let at = to_the_second(f.at);
        match &outcome {
            Ok(reading) => {
                seen.push(Seen {
                    device: f.device.clone(),
                    version: reading.version.clone(),
                    image_sha256: reading.image_sha256.clone(),
                    source: ObservationSource::Pull,
                    last_source: ObservationSource::Pull,
                    first_seen_at: at,
                    last_seen_at: at,
                    times: 1,
                });
                if let Some(stale) = reading.stale {
                    let report = HeadReport {
                        stale,
                        head_age_s: reading.head_age_s,
                        at,
                    };
                    heads.push((f.device.clone(), report));
                }
                done.entry(f.holder.clone()).or_default().push(PullDone {
                    device: f.device.clone(),
                    at,
                    next_due: f.next_due,
                    failure: None,
                });
            }
            Err(failure) => {
                let next_due = if f.rescheduled {
                    let put_off = at + backoff(f.failures_before + 1, backoff_max);
                    f.next_due.map(|due| due.max(put_off))
                } else {
                    f.next_due
                };
                done.entry(f.holder.clone()).or_default().push(PullDone {
                    device: f.device.clone(),
                    at,
                    next_due,
                    failure: Some((failure.reason, failure.detail.clone())),
                });
            }
        }
        results.push(PullResult {
            device: f.device,
            at: at.and_utc(),
            source: ObservationSource::Pull,
            version: outcome.as_ref().ok().map(|r| r.version.clone()),
            image_sha256: outcome.as_ref().ok().and_then(|r| r.image_sha256.clone()),
            failure: outcome.err().map(|f| FailureView {
                reason: f.reason,
                detail: f.detail,
            }),
        });
    }
    conn.write_transaction(|conn| {
        if !seen.is_empty() || !heads.is_empty() {
            flush::write(
                conn,
                &Batch {
                    seen,
                    offers: Vec::new(),
                    heads,
                },
            )?;
        }
        for (holder, done) in &done {
            DevicePull::finish(conn, holder, done)?;
        }
        Ok::<_, ServiceError>(())
    })?;
    Ok(results)
}

/// Writes pulls that ended.
pub async fn write(services: &Services, finished: Vec<Finished>) -> Result<Vec<PullResult>, ServiceError> {
    let backoff_max = services.config.pulls.backoff_max;
    let results = services
        .db
        .run(move |conn| write_finished(conn, backoff_max, finished))
        .await?;
    let failed = results.iter().filter(|r| r.failure.is_some()).count() as u64;
    let counts = &services.pull_counts;
    counts.failed.fetch_add(failed, std::sync::atomic::Ordering::Relaxed);
    counts
        .succeeded
        .fetch_add(results.len() as u64 - failed, std::sync::atomic::Ordering::Relaxed);
    Ok(results)
}

/// What a pull needs, owned, so that each runs as a task of its own and makes
/// progress while the scheduler waits on the database.
#[derive(Clone)]
struct Puller {
    outbound: crate::services::outbound::Outbound,
    settings: crate::config::PullSettings,
    sealing: Arc<crate::secrets::SealingKey>,
}

/// Runs one claimed pull; `None` when it could not start before its lease ran out
/// (the claim then lapses, and the device is claimed again).
async fn run_one(
    services: Puller,
    holder: Arc<str>,
    lease_end: Instant,
    claimed: Claimed,
    next_due: Option<NaiveDateTime>,
) -> Option<Finished> {
    let token = match &claimed.token_sealed {
        None => Ok(None),
        Some(sealed) => services
            .sealing
            .open(&token_purpose(&claimed.device_id), sealed)
            .map(Some)
            .ok_or_else(|| {
                Failure::new(
                    PullFailure::Connection,
                    "the pull token cannot be opened with this server's key (secrets_key_file differs?)",
                )
            }),
    };
    let outcome = match (token, Url::parse(&claimed.url)) {
        (Ok(token), Ok(url)) => {
            let settings = &services.settings;
            fetch::pull(
                &services.outbound,
                settings,
                &url,
                token.as_deref(),
                claimed.due_at,
                lease_end,
            )
            .await?
        }
        (Err(failure), _) => Err(failure),
        (_, Err(e)) => Err(Failure::new(
            PullFailure::Connection,
            format!("the stored URL is not valid: {e}"),
        )),
    };
    Some(Finished {
        holder,
        device: claimed.device_id,
        at: now(),
        next_due,
        failures_before: claimed.failures,
        outcome,
        rescheduled: true,
    })
}

/// When a claimed pull is next due: by the device's own schedule, or its customer's
/// default (`defaults`, read with the claim).
fn next_due(
    defaults: &HashMap<CustomerId, Option<Schedule>>,
    claimed: &Claimed,
    at: NaiveDateTime,
) -> Option<NaiveDateTime> {
    let schedule = match &claimed.schedule {
        Some(own) => own,
        None => defaults.get(&claimed.customer_id)?.as_ref()?,
    };
    // The next slot after the one that was due, and never one already past: a
    // backlog is caught up once, not slot by slot.
    schedule.next_after(claimed.due_at.unwrap_or(at).max(at))
}

/// Claims due pulls while there are any, runs them and writes them back; returns
/// how many pulls ended.
pub async fn run_due(services: &Services) -> Result<usize, ServiceError> {
    let settings = &services.config.pulls;
    let lease = lease(services)?;
    let puller = Puller {
        outbound: services.outbound.clone(),
        settings: settings.clone(),
        sealing: services.sealing.clone(),
    };
    // Dropping the set (the runner stopping) aborts the pulls in flight; their
    // leases lapse and another instance takes the work over.
    let mut running = tokio::task::JoinSet::new();
    let mut ended: Vec<Finished> = Vec::new();
    let mut total = 0;
    let mut nothing_due = false;
    let mut last_claim = Instant::now();
    // Pulls in flight by customer: none may have more than its share.
    let mut in_flight = Shares::new(settings.per_customer);
    loop {
        let room = settings.concurrency.saturating_sub(running.len()).min(CLAIM_MAX);
        // Claim when there is room: at once while work keeps coming, and again
        // every write period once nothing was due, for pulls that fall due while
        // slow ones finish.
        if room > 0 && (!nothing_due || last_claim.elapsed() >= WRITE_EVERY) {
            let holder: Arc<str> = claim_name(services).into();
            let claim_holder = holder.clone();
            let lease_end = Instant::now() + settings.lease;
            let (per_customer, full) = in_flight.claim_limits();
            let (claimed, defaults) = services
                .db
                .run(move |conn| {
                    let at = now();
                    let claimed =
                        DevicePull::claim_due(conn, &claim_holder, at, at + lease, room as i64, per_customer, &full)?;
                    let customers: HashSet<&CustomerId> = claimed
                        .iter()
                        .filter(|c| c.schedule.is_none())
                        .map(|c| &c.customer_id)
                        .collect();
                    let mut defaults = HashMap::new();
                    for customer in customers {
                        defaults.insert(customer.clone(), DevicePull::default_schedule(conn, customer)?);
                    }
                    Ok::<_, ServiceError>((claimed, defaults))
                })
                .await?;
            last_claim = Instant::now();
            nothing_due = claimed.len() < room;
            let at = now();
            for c in claimed {
                let next_due = next_due(&defaults, &c, at);
                let customer = c.customer_id.clone();
                in_flight.started(&customer);
                let pull = run_one(puller.clone(), holder.clone(), lease_end, c, next_due);
                running.spawn(async move { (customer, pull.await) });
            }
        }
        if running.is_empty() {
            break;
        }
        let window = tokio::time::Instant::now() + WRITE_EVERY;
        while let Ok(Some(joined)) = tokio::time::timeout_at(window, running.join_next()).await {
            match joined {
                Ok((customer, f)) => {
                    in_flight.ended(&customer);
                    ended.extend(f);
                }
                Err(err) => tracing::error!(error = %err, "a pull task failed"),
            }
        }
        if !ended.is_empty() {
            total += ended.len();
            write(services, std::mem::take(&mut ended)).await?;
        }
    }
    Ok(total)
}
