//! Prometheus metrics: requests by route and status, request latency, the fleet held
//! in memory (devices, the bytes its parts take, queued and dropped observations),
//! pulls made by this instance by outcome, and the state of the database pool,
//! rendered in the text exposition format.

use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

use crate::services::refusals::Refusal;
use crate::services::Services;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool_connections: IntGauge,
    pool_idle: IntGauge,
    database_down: IntGauge,
    fleet_devices: IntGauge,
    fleet_memory: prometheus::IntGaugeVec,
    observations_queued: IntGauge,
    observations_dropped: prometheus::IntCounter,
    pulls: IntCounterVec,
    refusals: IntCounterVec,
    witness_size: prometheus::IntGaugeVec,
    witness_age: prometheus::IntGaugeVec,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new_custom(Some("patchwarden".into()), None)?;
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route pattern").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route"],
        )?;
        let pool_connections = IntGauge::new("db_pool_connections", "database connections open")?;
        let pool_idle = IntGauge::new("db_pool_idle_connections", "database connections idle")?;
        let database_down = IntGauge::new(
            "db_known_down",
            "1 while the database is known to be unreachable and requests are answered 503 at once",
        )?;
        let fleet_devices = IntGauge::new("fleet_devices", "live devices this instance authenticates from memory")?;
        let fleet_memory = prometheus::IntGaugeVec::new(
            Opts::new(
                "fleet_memory_bytes",
                "bytes the in-memory fleet's structures take, by part (devices, token_index, queue), from their capacities",
            ),
            &["part"],
        )?;
        let observations_queued = IntGauge::new(
            "fleet_observations_queued",
            "observations and offers waiting in memory to be written",
        )?;
        let observations_dropped = prometheus::IntCounter::new(
            "fleet_observations_dropped_total",
            "observations dropped because the queue was full while the database was away",
        )?;
        let pulls = IntCounterVec::new(
            Opts::new(
                "pulls_total",
                "device pulls this instance made, by outcome (ok or failed)",
            ),
            &["outcome"],
        )?;
        let refusals = IntCounterVec::new(
            Opts::new(
                "refusals_total",
                "requests refused to protect the service, by reason (rate_limited, denied_address, over_cap) and what was limited",
            ),
            &["reason", "limit"],
        )?;
        let witness_size = prometheus::IntGaugeVec::new(
            Opts::new(
                "witness_cosigned_size",
                "the largest log size each witness cosigned, as this instance knows it",
            ),
            &["witness"],
        )?;
        let witness_age = prometheus::IntGaugeVec::new(
            Opts::new(
                "witness_cosigned_age_seconds",
                "seconds since each witness last cosigned a head, as this instance knows it",
            ),
            &["witness"],
        )?;
        registry.register(Box::new(witness_size.clone()))?;
        registry.register(Box::new(witness_age.clone()))?;
        registry.register(Box::new(refusals.clone()))?;
        registry.register(Box::new(pulls.clone()))?;
        registry.register(Box::new(fleet_devices.clone()))?;
        registry.register(Box::new(fleet_memory.clone()))?;
        registry.register(Box::new(observations_queued.clone()))?;
        registry.register(Box::new(observations_dropped.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_idle.clone()))?;
        registry.register(Box::new(database_down.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            pool_connections,
            pool_idle,
            database_down,
            fleet_devices,
            fleet_memory,
            observations_queued,
            observations_dropped,
            pulls,
            refusals,
            witness_size,
            witness_age,
        })
    }

    /// Counts one finished request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[route]).observe(elapsed.as_secs_f64());
    }

    /// The exposition text, with the pool gauges read now.
    pub fn render(&self, services: &Services) -> Result<String, prometheus::Error> {
        let db = &services.db;
        let fleet = &services.fleet;
        self.fleet_devices
            .set(i64::try_from(fleet.device_count()).unwrap_or(i64::MAX));
        let memory = fleet.memory();
        for (part, bytes) in [
            ("devices", memory.devices),
            ("token_index", memory.token_index),
            ("queue", memory.queue),
        ] {
            self.fleet_memory
                .with_label_values(&[part])
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        self.observations_queued
            .set(i64::try_from(fleet.queue.len()).unwrap_or(i64::MAX));
        let dropped = fleet.queue.dropped();
        self.observations_dropped
            .inc_by(dropped.saturating_sub(self.observations_dropped.get()));
        for (outcome, count) in [
            ("ok", &services.pull_counts.succeeded),
            ("failed", &services.pull_counts.failed),
        ] {
            let counter = self.pulls.with_label_values(&[outcome]);
            let now = count.load(std::sync::atomic::Ordering::Relaxed);
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        let mut refused: Vec<((&str, &str), u64)> = Refusal::ALL
            .iter()
            .map(|why| (why.labels(), services.refusals.get(*why)))
            .collect();
        refused.push((("denied_address", "pull"), services.outbound.denied()));
        refused.push((("denied_address", "webhook"), services.webhook_outbound.denied()));
        for ((reason, limit), now) in refused {
            let counter = self.refusals.with_label_values(&[reason, limit]);
            counter.inc_by(now.saturating_sub(counter.get()));
        }
        if let Some(policy) = &services.config.witness_policy {
            for status in services.witness_tracker.statuses(policy) {
                let (Some(size), Some(at)) = (status.cosigned_size, status.cosigned_at) else {
                    continue;
                };
                let age = (chrono::Utc::now() - at).num_seconds().max(0);
                self.witness_size
                    .with_label_values(&[&status.name])
                    .set(i64::try_from(size).unwrap_or(i64::MAX));
                self.witness_age.with_label_values(&[&status.name]).set(age);
            }
        }
        let (connections, idle) = db.pool_state();
        self.pool_connections.set(i64::from(connections));
        self.pool_idle.set(i64::from(idle));
        self.database_down.set(i64::from(db.known_down()));
        TextEncoder::new().encode_to_string(&self.registry.gather())
    }
}
