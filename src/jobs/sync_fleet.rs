//! Loads into this instance's memory the devices and the offer catalogue changed by
//! any instance since the last run, and the newest signed tree head, so that polls
//! see a publish, a yank, a decommissioning or a head signed elsewhere within a
//! fraction of a second.

use crate::services::fleet::Fleet;
use crate::services::{log, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    let fleet = Fleet::sync(services).await?;
    let head = log::follow(services).await?;
    Ok(usize::from(fleet) + usize::from(head))
}
