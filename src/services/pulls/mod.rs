//! Pulling device versions: where each device is asked (a URL, an optional bearer
//! token sealed at rest, a cron schedule or its customer's default), pulls on
//! demand, and the scheduler that fires due pulls (`scheduler`). Every result — a
//! version and image, or a failure and why — goes into the device's history and
//! feeds exposure at once.

pub mod fetch;
pub mod scheduler;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::db::models::{now, DevicePull};
use crate::domain::schedule::Schedule;
use crate::domain::{Caller, ObservationSource, PullFailure, Scope};
use crate::ids::{CustomerId, DeviceId};
use crate::services::fleet::devices::visible;
pub use crate::services::fleet::pull_target::{check_request, check_resolved, store, token_purpose, PullRequest};
use crate::services::{ServiceError, Services};

use scheduler::Finished;

/// The caller's customer; the vendor is refused with `why`.
fn own_customer(caller: &Caller, why: &str) -> Result<CustomerId, ServiceError> {
    caller
        .scope
        .customer()
        .cloned()
        .ok_or_else(|| ServiceError::Forbidden(why.to_owned()))
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
        &services.outbound,
        draft.url.as_deref(),
        draft.schedule.as_deref(),
        draft.token.as_deref(),
    )?;
    check_resolved(&services.outbound, request.as_ref()).await?;
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
pub async fn default_schedule(services: &Services, caller: &Caller) -> Result<Option<Schedule>, ServiceError> {
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
) -> Result<Option<Schedule>, ServiceError> {
    let customer = own_customer(caller, "the default schedule is a customer's")?;
    let schedule = schedule
        .map(|s| Schedule::parse(&s).map_err(|why| ServiceError::invalid("schedule", format!("schedule: {why}"))))
        .transpose()?;
    let stored = schedule.clone();
    services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                DevicePull::set_default_schedule(conn, &customer, stored.as_ref())?;
                let due = stored.as_ref().and_then(|s| s.next_after(now()));
                DevicePull::reschedule_defaults(conn, &customer, due)?;
                Ok::<_, ServiceError>(())
            })
        })
        .await?;
    tracing::info!(user.id = %caller.user, "changed the default pull schedule");
    Ok(schedule)
}

/// What one pull found, as the history and the API show it.
#[derive(Clone, Debug, Serialize)]
pub struct PullResult {
    pub device: DeviceId,
    pub at: chrono::DateTime<chrono::Utc>,
    pub source: ObservationSource,
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
    let secs = base.min(max.as_secs_f64()) * crate::random::spread();
    TimeDelta::milliseconds((secs * 1000.0) as i64)
}
