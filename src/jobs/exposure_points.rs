//! Records the exposure counts of every published advisory per customer for this
//! slot of `exposure_point_interval` (an hour unless configured), the points the
//! adoption charts draw. Running it twice in one slot replaces the slot's point.

use crate::services::fleet::exposure::snapshot;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    snapshot(services).await
}
