//! Sums the device tallies (the deltas triggers append as devices enrol, change
//! version or report, and leave) into one row per group, so that exposure counts
//! stay a read of a few rows.

use crate::services::fleet::exposure::fold_tallies;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    fold_tallies(services).await
}
