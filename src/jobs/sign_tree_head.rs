//! Signs the transparency log's tree head again once the newest is
//! `log_head_interval` old, even when nothing was appended: every poll answer
//! carries a head that expires (`log_head_ttl`), and a device refuses an expired
//! one, so a server that stops answering with fresh heads — or an attacker
//! replaying old answers — cannot keep a device believing there is no update.

use crate::services::{log, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    Ok(usize::from(log::sign_if_due(services).await?))
}
