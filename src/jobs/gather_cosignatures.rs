//! Sends the newest tree head to the witnesses of `witness_policy` that have not
//! cosigned it, and stores their cosignatures: checkpoints, poll answers and
//! evidence then carry them. Each witness on its own, with a timeout and a backoff,
//! so one that is down delays nothing.

use crate::services::{witnesses, ServiceError, Services};

pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    witnesses::gather(services).await
}
