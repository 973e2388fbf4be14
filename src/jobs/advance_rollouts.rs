//! Judges the open wave of each running rollout and pauses, advances or finishes
//! it; devices enrolled since a wave opened join it (see `services::rollouts`).

use crate::services::{rollouts, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    rollouts::advance(services).await
}
