//! Writes what polls and reports queued in memory: observations (folded into each
//! device's history, with its last-seen time and running version) and offers. A
//! batch the database cannot take now stays queued for the next run.

use crate::services::fleet::flush::flush;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    flush(services).await
}
