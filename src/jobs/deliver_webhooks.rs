//! Sends the webhook deliveries that are due, signed, and schedules the retries of
//! those that failed (see `services::webhooks::deliver`).

use crate::services::webhooks::deliver;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    deliver::run(services).await
}
