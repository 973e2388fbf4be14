//! Pulling device versions: where each device is asked (a URL, an optional bearer
//! token sealed at rest, a cron schedule or its customer's default), pulls on
//! demand, and the scheduler that fires due pulls (`scheduler`). Every result — a
//! version and image, or a failure and why — goes into the device's history and
//! feeds exposure at once.

pub mod fetch;
pub mod scheduler;

use chrono::{NaiveDateTime, TimeDelta};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::db::models::{now, DevicePull, PullTarget};
use crate::db::DbConnection;
use crate::domain::network::AddressPolicy;
use crate::domain::schedule::Schedule;
use crate::domain::{Caller, PullFailure, Scope};
use crate::ids::{CustomerId, DeviceId};
use crate::secrets::SealingKey;
use crate::services::fleet::devices::visible;
use crate::services::outbound::check_url;
use crate::services::{ServiceError, Services};

use scheduler::Finished;

/// What a sealed pull token is bound to.
pub fn token_purpose(device: &DeviceId) -> String {
    format!("pull_token:{device}")
}

/// The caller's customer; the vendor is refused with `why`.
fn own_customer(caller: &Caller, why: &str) -> Result<CustomerId, ServiceError> {
    caller
        .scope
        .customer()
        .cloned()
        .ok_or_else(|| ServiceError::Forbidden(why.to_owned()))
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
    policy: &AddressPolicy,
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
    let url = check_url(url, policy).map_err(|why| ServiceError::invalid("pull_url", format!("pull_url {why}")))?;
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
pub async fn check_resolved(policy: &AddressPolicy, request: Option<&PullRequest>) -> Result<(), ServiceError> {
    if let Some(request) = request {
        crate::services::outbound::check_resolved(&request.url, policy)
            .await
            .map_err(|why| ServiceError::invalid("pull_url", format!("pull_url {why}")))?;
    }
    Ok(())
}

/// The next scheduled pull after `at` by `schedule`, or the customer's default.
fn next_due(
    conn: &mut DbConnection,
    customer: &CustomerId,
    schedule: Option<&str>,
    at: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, ServiceError> {
    let text = match schedule {
        Some(s) => Some(s.to_owned()),
        None => DevicePull::default_schedule(conn, customer)?,
    };
    Ok(text
        .and_then(|t| Schedule::parse(&t).ok())
        .and_then(|s| s.next_after(at)))
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
        schedule: request.schedule.as_ref().map(|s| s.as_str().to_owned()),
        token_sealed: request.token.as_ref().map(|t| sealing.seal(&token_purpose(device), t)),
    };
    let due = next_due(conn, customer, target.schedule.as_deref(), now())?;
    DevicePull::set(conn, device, customer, Some(&target), due)?;
    Ok(())
}

/// The pull settings of a device, as an admin changes them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullSettingsDraft {
    /// `null` stops pulling the device.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// Sets, replaces or (without a URL) removes where a device of the caller's
/// customer is pulled from.
pub async fn configure(
    services: &Services,
    caller: &Caller,
    id: String,
    draft: PullSettingsDraft,
) -> Result<Option<DevicePull>, ServiceError> {
    let customer = own_customer(caller, "pulls are set by the customer's admins")?;
    let request = check_request(
        &services.outbound.policy,
        draft.url.as_deref(),
        draft.schedule.as_deref(),
        draft.token.as_deref(),
    )?;
    check_resolved(&services.outbound.policy, request.as_ref()).await?;
    let sealing = services.sealing.clone();
    let scope = Scope::Customer(customer.clone());
    let pull = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let (device, _) = visible(conn, &scope, &id)?;
                if device.decommissioned_at.is_some() {
                    return Err(ServiceError::Conflict("this device is decommissioned".into()));
                }
                match &request {
                    Some(request) => store(conn, &sealing, &device.id, &customer, request)?,
                    None => {
                        DevicePull::remove(conn, &device.id)?;
                    }
                }
                Ok(DevicePull::find(conn, &device.id)?)
            })
        })
        .await?;
    tracing::info!(user.id = %caller.user, pulled = pull.is_some(), "changed a device's pull settings");
    Ok(pull)
}

/// The caller's customer's default schedule.
pub async fn default_schedule(services: &Services, caller: &Caller) -> Result<Option<String>, ServiceError> {
    let customer = own_customer(caller, "the default schedule is a customer's")?;
    Ok(services
        .db
        .query(move |conn| DevicePull::default_schedule(conn, &customer))
        .await?)
}

/// Sets (or, with `None`, removes) the caller's customer's default schedule, and
/// moves the next pull of every device that follows it.
pub async fn set_default_schedule(
    services: &Services,
    caller: &Caller,
    schedule: Option<String>,
) -> Result<Option<String>, ServiceError> {
    let customer = own_customer(caller, "the default schedule is a customer's")?;
    let schedule = schedule
        .map(|s| Schedule::parse(&s).map_err(|why| ServiceError::invalid("schedule", format!("schedule: {why}"))))
        .transpose()?;
    let text = schedule.as_ref().map(|s| s.as_str().to_owned());
    let stored = text.clone();
    services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                DevicePull::set_default_schedule(conn, &customer, stored.as_deref())?;
                let due = schedule.and_then(|s| s.next_after(now()));
                DevicePull::reschedule_defaults(conn, &customer, due)?;
                Ok::<_, ServiceError>(())
            })
        })
        .await?;
    tracing::info!(user.id = %caller.user, "changed the default pull schedule");
    Ok(text)
}

/// What one pull found, as the history and the API show it.
#[derive(Clone, Debug, Serialize)]
pub struct PullResult {
    pub device: DeviceId,
    pub at: chrono::DateTime<chrono::Utc>,
    pub source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailureView {
    pub reason: PullFailure,
    pub detail: String,
}

/// Pulls device `id` now, whatever its schedule; answers with what was observed.
/// Its next scheduled pull stays where it was.
pub async fn pull_now(services: &Services, scope: &Scope, id: String) -> Result<PullResult, ServiceError> {
    let holder = scheduler::claim_name(services);
    let lease = scheduler::lease(services)?;
    let lease_end = std::time::Instant::now() + services.config.pulls.lease;
    let claim_scope = scope.clone();
    let claim_holder = holder.clone();
    let claimed = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let (device, _) = visible(conn, &claim_scope, &id)?;
                if device.decommissioned_at.is_some() {
                    return Err(ServiceError::Conflict("this device is decommissioned".into()));
                }
                if DevicePull::find(conn, &device.id)?.is_none() {
                    return Err(ServiceError::Conflict(
                        "this device has no pull_url to pull from".into(),
                    ));
                }
                let at = now();
                DevicePull::claim_one(conn, &device.id, &claim_holder, at, at + lease)?.ok_or_else(|| {
                    ServiceError::Conflict("a pull of this device is under way; try again shortly".into())
                })
            })
        })
        .await?;
    let due = claimed.due_at;
    let device = claimed.device_id.clone();
    let token = match &claimed.token_sealed {
        None => None,
        Some(sealed) => Some(
            services
                .sealing
                .open(&token_purpose(&device), sealed)
                .ok_or_else(|| ServiceError::internal("pull token", "sealed under another key"))?,
        ),
    };
    let url = Url::parse(&claimed.url).map_err(|e| ServiceError::internal("stored pull URL", e))?;
    let outcome = fetch::pull(
        &services.outbound,
        &services.config.pulls,
        &url,
        token.as_deref(),
        None,
        lease_end,
    )
    .await
    .ok_or_else(|| ServiceError::Conflict("the pull could not start in time; try again".into()))?;
    let finished = Finished {
        holder: holder.into(),
        device: device.clone(),
        at: now(),
        next_due: due,
        failures_before: claimed.failures,
        outcome,
        rescheduled: false,
    };
    let done = scheduler::write(services, vec![finished]).await?;
    let result = done
        .into_iter()
        .next()
        .ok_or_else(|| ServiceError::internal("pull", "no result written"))?;
    crate::services::fleet::refresh(services).await;
    Ok(result)
}

/// How long a device that failed `failures` pulls in a row waits before the next:
/// 30 s doubled for each failure, with jitter, up to `max`.
pub fn backoff(failures: i32, max: std::time::Duration) -> TimeDelta {
    let base = 30.0 * 2f64.powi(failures.clamp(1, 30) - 1);
    let secs = base.min(max.as_secs_f64()) * fetch::jitter();
    TimeDelta::milliseconds((secs * 1000.0) as i64)
}
