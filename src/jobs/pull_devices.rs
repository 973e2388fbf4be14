//! Fires the pulls that are due: claims them with leases, pulls concurrently and
//! writes each result into its device's history (see `services::pulls::scheduler`).

use crate::services::pulls::scheduler;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    scheduler::run_due(services).await
}
