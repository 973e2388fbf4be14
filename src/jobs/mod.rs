//! The background jobs runner: one place where periodic work is registered and run.
//! Each job is one file, safe to run twice (a second instance, or a run from the
//! shell, finds nothing left to do), and runnable once through [`run_once`]. An
//! instance started with `jobs = false` runs none of them.

pub mod sweep_files;
pub mod sweep_uploads;

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
}

impl Job {
    pub const ALL: [Job; 2] = [Job::SweepUploads, Job::SweepFiles];

    pub fn name(self) -> &'static str {
        match self {
            Job::SweepUploads => "sweep-uploads",
            Job::SweepFiles => "sweep-files",
        }
    }

    /// How often the runner starts it.
    pub fn every(self) -> Duration {
        match self {
            Job::SweepUploads => Duration::from_secs(15 * 60),
            Job::SweepFiles => Duration::from_secs(60 * 60),
        }
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
    }
}

/// Starts every job on its interval, on the current runtime, for as long as the
/// returned handles live. A failed run is logged and retried at the next interval.
pub fn start(services: Arc<impl AsRef<Services> + Send + Sync + 'static>) -> Vec<tokio::task::JoinHandle<()>> {
    Job::ALL
        .into_iter()
        .map(|job| {
            let services = services.clone();
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(job.every());
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    match run_once(services.as_ref().as_ref(), job).await {
                        Ok(0) => {}
                        Ok(count) => tracing::info!(job = job.name(), count, "job finished"),
                        Err(err) => tracing::warn!(job = job.name(), error = %err, "job failed"),
                    }
                }
            })
        })
        .collect()
}
