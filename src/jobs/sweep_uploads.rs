//! Removes resumable uploads that stayed idle past their limit, and those of patches
//! that are no longer drafts, with their partial data.

use crate::services::patches::uploads;
use crate::services::{ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    uploads::expire_idle(services).await
}
