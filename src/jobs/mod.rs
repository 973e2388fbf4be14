//! The background jobs runner: one place where periodic work is registered and run.
//! Each job is one file, safe to run twice (a second instance, or a run from the
//! shell, finds nothing left to do), and runnable once through [`run_once`].
//!
//! Two kinds: *instance* jobs keep this instance's in-memory state in step with the
//! database (the fleet sync, the observation flush) and run on every instance;
//! *scheduled* jobs (pulls, webhook deliveries, the fleet watch, sweeps, exposure
//! points) run only where `jobs = true`; those that claim work take database
//! leases, so any number of instances may run them.

pub mod advance_rollouts;
pub mod deliver_webhooks;
pub mod exposure_points;
pub mod flush_observations;
pub mod fold_tallies;
pub mod gather_cosignatures;
pub mod integrate_log;
pub mod pull_devices;
pub mod sign_tree_head;
pub mod sweep_files;
pub mod sweep_uploads;
pub mod sync_fleet;
pub mod watch_fleet;

use std::sync::Arc;
use std::time::Duration;

use crate::services::{ServiceError, Services};

/// The jobs there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Removes resumable uploads idle past their limit, and those of patches that
    /// are no longer drafts.
    SweepUploads,
    /// Removes stored patch files that no patch references any more.
    SweepFiles,
    /// Records this slot's exposure counts, the points of the adoption charts.
    ExposurePoints,
    /// Sums the device tallies written since the last fold, one row per group.
    FoldTallies,
    /// Writes the observations and offers polls queued.
    FlushObservations,
    /// Loads device and catalogue changes made by other instances.
    SyncFleet,
    /// Pulls the versions of devices whose schedule is due.
    PullDevices,
    /// Sends webhook deliveries that are due.
    DeliverWebhooks,
    /// Raises unreachable-device and overdue-deadline events.
    WatchFleet,
    /// Signs the log's tree head again when the newest is due for renewal.
    SignTreeHead,
    /// Asks the witnesses to cosign the newest tree head.
    GatherCosignatures,
    /// Integrates pending log entries and signs a head that covers them.
    IntegrateLog,
    /// Judges the open wave of each running rollout: pauses, advances or finishes it.
    AdvanceRollouts,
}

impl Job {
    pub const ALL: [Job; 13] = [
        Job::SweepUploads,
        Job::SweepFiles,
        Job::ExposurePoints,
        Job::FoldTallies,
        Job::FlushObservations,
        Job::SyncFleet,
        Job::PullDevices,
        Job::DeliverWebhooks,
        Job::WatchFleet,
        Job::SignTreeHead,
        Job::GatherCosignatures,
        Job::IntegrateLog,
        Job::AdvanceRollouts,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::SweepUploads => "sweep-uploads",
            Job::SweepFiles => "sweep-files",
            Job::ExposurePoints => "exposure-points",
            Job::FoldTallies => "fold-tallies",
            Job::FlushObservations => "flush-observations",
            Job::SyncFleet => "sync-fleet",
            Job::PullDevices => "pull-devices",
            Job::DeliverWebhooks => "deliver-webhooks",
            Job::WatchFleet => "watch-fleet",
            Job::SignTreeHead => "sign-tree-head",
            Job::GatherCosignatures => "gather-cosignatures",
            Job::IntegrateLog => "integrate-log",
            Job::AdvanceRollouts => "advance-rollouts",
        }
    }

    /// How often the runner starts it.
    pub fn every(self) -> Duration {
        match self {
            Job::SweepUploads => Duration::from_secs(15 * 60),
            Job::SweepFiles => Duration::from_secs(60 * 60),
            Job::ExposurePoints => Duration::from_secs(60 * 60),
            Job::FoldTallies => Duration::from_secs(10),
            // Observations are at most this late; a crash loses at most this much.
            Job::FlushObservations => Duration::from_secs(1),
            // Changes made on other instances reach polls here within this.
            Job::SyncFleet => Duration::from_millis(250),
            // Schedules have one-second resolution; a run lasts while pulls are due.
            Job::PullDevices => Duration::from_millis(250),
            Job::DeliverWebhooks => Duration::from_millis(250),
            Job::WatchFleet => Duration::from_secs(60),
            // Checks often; signs only when the newest head is `log_head_interval` old.
            Job::SignTreeHead => Duration::from_secs(5),
            // A new head is sent to the witnesses within this.
            Job::GatherCosignatures => Duration::from_millis(200),
            // An entry waits at most this for its index.
            Job::IntegrateLog => Duration::from_millis(100),
            // A wave's threshold is acted on within this of the report that crossed it.
            Job::AdvanceRollouts => Duration::from_secs(1),
        }
    }

    /// How often the runner starts it on a server with `config`.
    pub fn interval(self, config: &crate::config::Config) -> Duration {
        match self {
            Job::ExposurePoints => config.exposure_point_interval,
            other => other.every(),
        }
    }

    /// Whether every instance runs it, whatever `jobs` says: it keeps this
    /// instance's memory in step with the database.
    pub fn per_instance(self) -> bool {
        matches!(self, Job::FlushObservations | Job::SyncFleet)
    }

    /// Runs several times a second; its runs are not worth a log line each.
    pub fn frequent(self) -> bool {
        self.every() < Duration::from_secs(1)
    }

    pub fn parse(name: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|job| job.name() == name)
    }
}

/// Runs `job` once; returns how many items it removed or handled.
pub async fn run_once(services: &Services, job: Job) -> Result<usize, ServiceError> {
    match job {
        Job::SweepUploads => sweep_uploads::run(services).await,
        Job::SweepFiles => sweep_files::run(services).await,
        Job::ExposurePoints => exposure_points::run(services).await,
        Job::FoldTallies => fold_tallies::run(services).await,
        Job::FlushObservations => flush_observations::run(services).await,
        Job::SyncFleet => sync_fleet::run(services).await,
        Job::PullDevices => pull_devices::run(services).await,
        Job::DeliverWebhooks => deliver_webhooks::run(services).await,
        Job::WatchFleet => watch_fleet::run(services).await,
        Job::SignTreeHead => sign_tree_head::run(services).await,
        Job::GatherCosignatures => gather_cosignatures::run(services).await,
        Job::IntegrateLog => integrate_log::run(services).await,
        Job::AdvanceRollouts => advance_rollouts::run(services).await,
    }
}

/// The running jobs: [`Runner::stop`] lets each finish the run it is in; dropping
/// it stops them at once.
pub struct Runner {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Runner {
    /// Stops the jobs once each has finished the run it is in (what a run claimed is
    /// written back, not left to its lease), and waits for that.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the instance jobs, and the scheduled ones when `scheduled`, each on its
/// interval on the current runtime. A failed run is logged and retried at the next
/// interval; while the database is known to be down that is not news, so it is
/// logged once when it starts failing and once when it recovers.
pub fn start(services: Arc<impl AsRef<Services> + Send + Sync + 'static>, scheduled: bool) -> Runner {
    let jobs: Vec<Job> = Job::ALL
        .into_iter()
        .filter(|job| scheduled || job.per_instance())
        .collect();
    start_jobs(services, &jobs)
}

/// Starts `jobs`, each on its interval on the current runtime.
pub fn start_jobs(services: Arc<impl AsRef<Services> + Send + Sync + 'static>, jobs: &[Job]) -> Runner {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let tasks = jobs
        .iter()
        .copied()
        .map(|job| {
            let services = services.clone();
            let mut stopping = stopping.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(job.interval(&services.as_ref().as_ref().config));
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut failing = false;
                loop {
                    tokio::select! {
                        _ = ticks.tick() => {}
                        _ = stopping.changed() => return,
                    }
                    if *stopping.borrow() {
                        return;
                    }
                    match run_once(services.as_ref().as_ref(), job).await {
                        Ok(count) => {
                            if failing {
                                tracing::info!(job = job.name(), "job runs again");
                                failing = false;
                            }
                            if count > 0 && !job.per_instance() && !job.frequent() {
                                tracing::info!(job = job.name(), count, "job finished");
                            }
                        }
                        Err(err) if failing => tracing::debug!(job = job.name(), error = %err, "job failed"),
                        Err(err) => {
                            failing = true;
                            tracing::warn!(job = job.name(), error = %err, "job failed");
                        }
                    }
                }
            })
        })
        .collect();
    Runner { tasks, stop }
}
