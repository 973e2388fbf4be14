//! Loads into this instance's memory the devices and the offer catalogue changed by
//! any instance since the last run, so that polls see a publish, a yank or a
//! decommissioning made elsewhere within a fraction of a second.

use crate::services::fleet::Fleet;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    Ok(usize::from(Fleet::sync(services).await?))
}
