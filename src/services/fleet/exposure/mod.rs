//! Exposure: where each device stands against a published advisory (affected,
//! fixed, unaffected, unknown; overdue past the fix deadline; claimed-not-running
//! when it reported the fix installed but still runs an affected version; stalled
//! when an install step is older than the stall limit). Counted from device groups
//! (customer, product, version, latest report) read from an index, so only the
//! distinct versions are parsed, however large the fleet; the device list filters by
//! the versions found in a state. Also the hourly counts the adoption charts draw.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::db::models::exposure::customer_slugs;
use crate::db::models::{AdvisoryRecord, DeviceOrder, DeviceRecord};
use crate::db::DbConnection;
use crate::domain::{AdvisoryStatus, ExposureState, ReportState, Scope};
use crate::ids::CustomerId;
use crate::services::advisories::{find, KnownProducts};
use crate::services::{ServiceError, Services};

use super::scoped_customer;

mod counts;
mod dashboard;
mod device;
mod rules;
mod vex;

pub use counts::{advisory_counts, emergencies_affecting, AdvisoryCounts};
pub use dashboard::{dashboard, fold_tallies, products, snapshot, DashboardEntry};
pub use device::{of_device, DeviceAdvisory};
pub use vex::vex;

use rules::Rules;

/// Device counts of one advisory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub affected: i64,
    pub fixed: i64,
    pub unaffected: i64,
    pub unknown: i64,
    pub overdue: i64,
    pub claimed_not_running: i64,
    pub stalled: i64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.affected += other.affected;
        self.fixed += other.fixed;
        self.unaffected += other.unaffected;
        self.unknown += other.unknown;
        self.overdue += other.overdue;
        self.claimed_not_running += other.claimed_not_running;
        self.stalled += other.stalled;
    }

    /// Devices this advisory ever concerned: affected now, or fixed.
    pub fn concerned(&self) -> i64 {
        self.affected + self.fixed
    }
}

/// What a device list of an advisory is narrowed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    Exposure(ExposureState),
    Overdue,
    ClaimedNotRunning,
    Stalled,
}

impl std::str::FromStr for StateFilter {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "overdue" => Ok(StateFilter::Overdue),
            "claimed_not_running" => Ok(StateFilter::ClaimedNotRunning),
            "stalled" => Ok(StateFilter::Stalled),
            other => other.parse().map(StateFilter::Exposure).map_err(|_| {
                format!(
                    "`{other}` is not a state: affected, fixed, unaffected, unknown, overdue, claimed_not_running or stalled"
                )
            }),
        }
    }
}

/// One device of an exposure list.
#[derive(Clone, Debug)]
pub struct ExposedDevice {
    pub device: DeviceRecord,
    pub customer: String,
    pub product: String,
    pub state: ExposureState,
    pub overdue: bool,
    pub claimed_not_running: bool,
    pub stalled: bool,
}

/// The counts of one customer.
#[derive(Clone, Debug)]
pub struct CustomerCounts {
    pub customer: String,
    pub counts: Counts,
}

/// An advisory's exposure as one caller may see it.
#[derive(Clone, Debug)]
pub struct Exposure {
    pub advisory: AdvisoryRecord,
    pub public_id: String,
    pub emergency: bool,
    pub fix_deadline: Option<DateTime<Utc>>,
    pub counts: Counts,
    /// Per customer, by slug (the vendor's view; one entry for a customer admin).
    pub customers: Vec<CustomerCounts>,
    pub devices: Vec<ExposedDevice>,
    /// Devices that match the state filter, over all pages.
    pub matching: i64,
}

/// What an exposure request asks for.
#[derive(Clone, Debug, Default)]
pub struct ExposureQuery {
    /// A customer's slug (the vendor's filter; a customer admin sees its own anyway).
    pub customer: Option<String>,
    pub state: Option<StateFilter>,
    pub page: u32,
    pub per_page: u32,
    /// Every matching device, no pages (the CSV export).
    pub everything: bool,
    /// Only devices with this label (`name`, `value`).
    pub label: Option<(String, String)>,
    /// Only devices running this version.
    pub version: Option<String>,
    /// A keyset page instead of `page`: an order and the device it starts after.
    pub keyset: Option<Keyset>,
}

/// A keyset page of a device list: the order, and the device the page starts after.
#[derive(Clone, Debug, Default)]
pub struct Keyset {
    pub order: DeviceOrder,
    pub after: Option<crate::ids::DeviceId>,
}

/// One keyset page of the devices `filter` selects; 422 when `after` names no device.
pub(super) fn keyset_page(
    conn: &mut DbConnection,
    filter: &crate::db::models::DeviceFilter,
    keyset: &Keyset,
    limit: u32,
) -> Result<Vec<crate::db::models::NamedDevice>, ServiceError> {
    DeviceRecord::page_after(conn, filter, keyset.order, keyset.after.as_ref(), i64::from(limit))?
        .ok_or_else(|| ServiceError::invalid("after", "`after` names a device that does not exist"))
}

/// How many devices a state filter selects, from the counts.
pub(super) fn counted(counts: &Counts, state: Option<StateFilter>) -> Option<i64> {
    Some(match state {
        None => counts.affected + counts.fixed + counts.unaffected + counts.unknown,
        Some(StateFilter::Exposure(ExposureState::Affected)) => counts.affected,
        Some(StateFilter::Exposure(ExposureState::Fixed)) => counts.fixed,
        Some(StateFilter::Exposure(ExposureState::Unaffected)) => counts.unaffected,
        Some(StateFilter::Exposure(ExposureState::Unknown)) => counts.unknown,
        Some(StateFilter::Overdue) => counts.overdue,
        Some(StateFilter::ClaimedNotRunning) => counts.claimed_not_running,
        Some(StateFilter::Stalled) => counts.stalled,
    })
}

/// The install steps a device can stall in, as stored.
pub(super) fn in_progress() -> Vec<&'static str> {
    ReportState::ALL
        .iter()
        .filter(|s| s.in_progress())
        .map(|s| s.as_str())
        .collect()
}

pub(super) fn published(conn: &mut DbConnection, key: &str) -> Result<AdvisoryRecord, ServiceError> {
    let record = find(conn, key)?;
    if record.status != AdvisoryStatus::Published {
        return Err(ServiceError::NotFound("advisory"));
    }
    Ok(record)
}

/// The counts of every customer in `by_customer`, summed, and each by slug in slug order.
pub(super) fn per_customer(
    conn: &mut DbConnection,
    by_customer: &HashMap<CustomerId, Counts>,
) -> Result<(Counts, Vec<CustomerCounts>), ServiceError> {
    let ids: Vec<CustomerId> = by_customer.keys().cloned().collect();
    let slugs: HashMap<CustomerId, String> = customer_slugs(conn, &ids)?.into_iter().collect();
    let mut counts = Counts::default();
    let mut customers: Vec<CustomerCounts> = by_customer
        .iter()
        .map(|(id, c)| {
            counts.add(c);
            CustomerCounts {
                customer: slugs.get(id).cloned().unwrap_or_else(|| id.to_string()),
                counts: *c,
            }
        })
        .collect();
    customers.sort_by(|a, b| a.customer.cmp(&b.customer));
    Ok((counts, customers))
}

pub fn stall_after(services: &Services) -> Result<TimeDelta, ServiceError> {
    TimeDelta::from_std(services.config.install_stall_after).map_err(|e| ServiceError::internal("stall limit", e))
}

/// The exposure of the published advisory `key` as `scope` may see it.
pub async fn exposure(
    services: &Services,
    scope: &Scope,
    key: String,
    query: ExposureQuery,
) -> Result<Exposure, ServiceError> {
    let stall = stall_after(services)?;
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let record = published(conn, &key)?;
            let catalogue = KnownProducts::load(conn)?;
            let mut rules = Rules::load(conn, &catalogue, record, stall)?;
            let customer = scoped_customer(conn, &scope, query.customer.as_deref())?;
            if customer.as_ref().is_some_and(|c| !rules.concerns(c)) {
                return Err(ServiceError::NotFound("advisory"));
            }
            let (groups, by_customer) = rules.tally(conn, customer.as_ref())?;
            let (counts, customers) = per_customer(conn, &by_customer)?;
            let filter = rules.filter(&groups, query.state, customer.as_ref()).map(|mut filter| {
                filter.label = query.label.clone();
                filter.versions = query.version.clone().map(|v| vec![v]);
                filter
            });
            let (devices, matching) = match filter {
                None => (Vec::new(), 0),
                Some(filter) if query.everything => {
                    let rows = DeviceRecord::all(conn, &filter)?;
                    let total = rows.len() as i64;
                    (rows, total)
                }
                Some(filter) => {
                    // The counts already say how many match, unless a label or a
                    // version narrows them further.
                    let total = match counted(&counts, query.state) {
                        Some(total) if query.label.is_none() && query.version.is_none() => total,
                        _ => DeviceRecord::count_matching(conn, &filter)?,
                    };
                    let rows = match &query.keyset {
                        Some(keyset) => keyset_page(conn, &filter, keyset, query.per_page)?,
                        None => {
                            let offset = i64::from(query.page.max(1) - 1) * i64::from(query.per_page);
                            DeviceRecord::page(conn, &filter, offset, i64::from(query.per_page))?
                        }
                    };
                    (rows, total)
                }
            };
            let devices = devices.into_iter().map(|named| rules.exposed(named)).collect();
            Ok(Exposure {
                public_id: rules.public_id.clone(),
                emergency: rules.advisory.emergency,
                fix_deadline: rules.advisory.fix_deadline,
                advisory: rules.record.clone(),
                counts,
                customers,
                devices,
                matching,
            })
        })
        .await
}
