//! Where a device is pulled from, as part of the device: the URL (checked against
//! the outbound policy, and what its name resolves to), the bearer token sealed at
//! rest, the schedule and the next time it falls due. Enrolment and the pull
//! settings both store it here; the pulls themselves (`services::pulls`) read it.

use chrono::NaiveDateTime;
use url::Url;

use crate::db::models::{now, DevicePull, PullTarget};
use crate::db::DbConnection;
use crate::domain::schedule::Schedule;
use crate::ids::{CustomerId, DeviceId};
use crate::secrets::SealingKey;
use crate::services::outbound::Outbound;
use crate::services::ServiceError;

/// What a sealed pull token is bound to.
pub fn token_purpose(device: &DeviceId) -> String {
    format!("pull_token:{device}")
}

/// Where and how to pull a device, checked.
#[derive(Clone, Debug)]
pub struct PullRequest {
    pub url: Url,
    pub schedule: Option<Schedule>,
    pub token: Option<String>,
}

/// Checks the pull fields of a device; `None` when there is no pull URL.
pub fn check_request(
    outbound: &Outbound,
    url: Option<&str>,
    schedule: Option<&str>,
    token: Option<&str>,
) -> Result<Option<PullRequest>, ServiceError> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        if schedule.is_some() || token.is_some() {
            return Err(ServiceError::invalid(
                "pull_url",
                "pull_schedule and pull_token need a pull_url",
            ));
        }
        return Ok(None);
    };
    let url = outbound
        .check_url(url)
        .map_err(|why| ServiceError::invalid("pull_url", format!("pull_url {why}")))?;
    let schedule = schedule
        .map(|s| {
            Schedule::parse(s).map_err(|why| ServiceError::invalid("pull_schedule", format!("pull_schedule: {why}")))
        })
        .transpose()?;
    let token = token
        .map(|t| {
            let ok = (1..=4096).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_graphic());
            if ok {
                Ok(t.to_owned())
            } else {
                Err(ServiceError::invalid(
                    "pull_token",
                    "pull_token must be 1 to 4096 printable ASCII characters without spaces",
                ))
            }
        })
        .transpose()?;
    Ok(Some(PullRequest { url, schedule, token }))
}

/// Checks, for a request that has a pull URL, what its host name resolves to now.
pub async fn check_resolved(outbound: &Outbound, request: Option<&PullRequest>) -> Result<(), ServiceError> {
    if let Some(request) = request {
        outbound
            .check_resolved(&request.url)
            .await
            .map_err(|why| ServiceError::invalid("pull_url", format!("pull_url {why}")))?;
    }
    Ok(())
}

/// The next scheduled pull after `at` by `schedule`, or the customer's default.
pub fn next_due(
    conn: &mut DbConnection,
    customer: &CustomerId,
    schedule: Option<&Schedule>,
    at: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, ServiceError> {
    Ok(match schedule {
        Some(schedule) => schedule.next_after(at),
        None => DevicePull::default_schedule(conn, customer)?.and_then(|s| s.next_after(at)),
    })
}

/// Stores where `device` is pulled from (sealing its token), due by its schedule.
pub fn store(
    conn: &mut DbConnection,
    sealing: &SealingKey,
    device: &DeviceId,
    customer: &CustomerId,
    request: &PullRequest,
) -> Result<(), ServiceError> {
    let target = PullTarget {
        url: request.url.to_string(),
        schedule: request.schedule.clone(),
        token_sealed: request.token.as_ref().map(|t| sealing.seal(&token_purpose(device), t)),
    };
    let due = next_due(conn, customer, target.schedule.as_ref(), now())?;
    DevicePull::set(conn, device, customer, Some(&target), due)?;
    Ok(())
}
