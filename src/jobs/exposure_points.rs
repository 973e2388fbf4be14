//! Records this hour's exposure counts of every published advisory per customer,
//! the points the adoption charts draw. Running it twice in an hour replaces the
//! hour's point.

use crate::services::fleet::exposure::snapshot;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    snapshot(services).await
}
