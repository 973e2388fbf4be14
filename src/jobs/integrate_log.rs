//! The log's sequencer: integrates the entries appended since its last run into
//! the tree, in batches, and signs a head over them once the newest head is
//! `log_cover_after` old, so an event is covered by a signed head within about a
//! second of its commit whatever the rate of appends. Any number of instances
//! may run it: integration takes the log's row lock, and a head another instance
//! signed meanwhile is noticed.

use crate::services::{log, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    let integrated = log::integrate_pending(services).await?;
    log::cover(services).await?;
    Ok(integrated)
}
