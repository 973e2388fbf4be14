//! The fleet: devices of each customer, how they enrol, the update poll answered
//! from memory, install reports, observations written in batches, and exposure per
//! advisory.
//!
//! - `cache`: this instance's copy of devices (by token) and of the offer
//!   catalogue, kept in step with the database through change counters;
//! - `catalogue`: what devices may be offered, rendered once per change;
//! - `observations` and `flush`: what devices were seen running, queued in memory
//!   and written once a second;
//! - `devices`: enrolment, enrolment tokens, reads, decommissioning;
//! - `poll`: the device protocol (poll, report, download);
//! - `exposure`: counts and device lists per advisory, dashboards, chart points.

pub mod cache;
pub mod catalogue;
pub mod device_reads;
pub mod devices;
pub mod enrollment_tokens;
pub mod exposure;
pub mod flush;
mod handles;
pub mod installs;
pub mod observations;
pub mod poll;
pub mod pull_target;
pub mod screens;
pub mod updates;

pub use cache::{DeviceEntry, Fleet, DEVICE_TOKEN_PREFIX};

use crate::db::models::Customer;
use crate::db::DbConnection;
use crate::domain::Scope;
use crate::ids::CustomerId;
use crate::services::{ServiceError, Services};

/// The customer a fleet read is limited to: a customer admin's own whatever it
/// asked; for the vendor the customer `slug` names, or every customer.
pub fn scoped_customer(
    conn: &mut DbConnection,
    scope: &Scope,
    slug: Option<&str>,
) -> Result<Option<CustomerId>, ServiceError> {
    match (scope, slug) {
        (Scope::Customer(own), _) => Ok(Some(own.clone())),
        (Scope::Vendor, Some(slug)) => Ok(Some(
            Customer::find_by_slug(conn, slug)?
                .ok_or(ServiceError::NotFound("customer"))?
                .id,
        )),
        (Scope::Vendor, None) => Ok(None),
    }
}

/// Brings this instance's fleet copy up to date after a change it committed. A
/// failure here does not undo the change: it is logged, and the sync job, which
/// runs a few times a second, picks the change up.
pub async fn refresh(services: &Services) {
    if let Err(err) = Fleet::sync(services).await {
        tracing::warn!(error = %err, "the fleet copy could not be brought up to date; the sync job will retry");
    }
}

/// The caller's customer: devices and their enrolment tokens are its admins' to manage.
pub(crate) fn customer_of(caller: &crate::domain::Caller) -> Result<&CustomerId, ServiceError> {
    caller
        .scope
        .customer()
        .ok_or_else(|| ServiceError::Forbidden("devices are enrolled by the customer's admins".into()))
}
