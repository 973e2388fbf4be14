//! Raises `device.unreachable` and `deadline.overdue` events and the
//! unreachable-in-an-emergency anomaly (see `services::watch`).

use crate::services::{watch, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    watch::run(services).await
}
