//! What the fleet screens show beyond the API's answers: a device list that is
//! either the fleet or one advisory's exposure, with the advisories to filter by;
//! the dashboard; each open emergency's progress customer by customer, for the
//! vendor's home and customer list.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::db::models::{AdvisoryRecord, Customer, DeviceRecord, NamedDevice};
use crate::domain::{AdvisoryStatus, ExposureState, Scope};
use crate::services::{ServiceError, Services};

use super::devices::{self, ListQuery};
use super::exposure::{self, Counts, CustomerCounts, ExposureQuery, StateFilter};

/// One row of the device list.
pub struct DeviceRow {
    pub named: NamedDevice,
    /// Against the advisory filtered by, when there is one.
    pub state: Option<ExposureState>,
    pub overdue: bool,
    pub claimed_not_running: bool,
    pub stalled: bool,
}

/// A page of the device list.
pub struct DeviceListPage {
    pub rows: Vec<DeviceRow>,
    pub total: i64,
    /// Published advisories, as (public id, title), for the filter.
    pub advisories: Vec<(String, String)>,
}

/// What the device list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct DeviceListQuery {
    pub advisory: Option<String>,
    pub state: Option<StateFilter>,
    pub list: ListQuery,
}

/// The devices `scope` sees, as the list screen shows them.
pub async fn device_list(
    services: &Services,
    scope: &Scope,
    query: DeviceListQuery,
) -> Result<DeviceListPage, ServiceError> {
    let (rows, total) = match query.advisory.clone() {
        Some(advisory) => {
            let found = exposure::exposure(
                services,
                scope,
                advisory,
                ExposureQuery {
                    customer: query.list.customer.clone(),
                    state: query.state,
                    page: query.list.page,
                    per_page: query.list.per_page,
                    everything: false,
                    label: query.list.label.clone(),
                    version: query.list.version.clone(),
                    keyset: query.list.keyset.clone(),
                },
            )
            .await?;
            let rows = found
                .devices
                .into_iter()
                .map(|d| DeviceRow {
                    state: Some(d.state),
                    overdue: d.overdue,
                    claimed_not_running: d.claimed_not_running,
                    stalled: d.stalled,
                    named: (d.device, d.customer, d.product),
                })
                .collect();
            (rows, found.matching)
        }
        None => {
            let (named, total) = devices::list(services, scope, query.list.clone()).await?;
            let rows = named
                .into_iter()
                .map(|named| DeviceRow {
                    named,
                    state: None,
                    overdue: false,
                    claimed_not_running: false,
                    stalled: false,
                })
                .collect();
            (rows, total)
        }
    };
    // The advisories to choose from: those this scope may read.
    let reader = crate::domain::Reader::in_scope(scope);
    let advisories = services
        .db
        .run(move |conn| {
            let mut readable = Vec::new();
            for record in AdvisoryRecord::list_all(conn)? {
                if record.status == AdvisoryStatus::Published && record.readable(conn, &reader)? {
                    if let Some(id) = record.public_id {
                        readable.push((id, record.title));
                    }
                }
            }
            Ok::<_, ServiceError>(readable)
        })
        .await?;
    Ok(DeviceListPage {
        rows,
        total,
        advisories,
    })
}

/// Stale devices the dashboard lists at most.
const STALE_LIMIT: i64 = 200;

/// The fleet dashboard: the advisories that concern the fleet and its open anomaly
/// flags.
pub struct Overview {
    pub advisories: Vec<exposure::DashboardEntry>,
    pub anomalies: Vec<crate::db::models::ListedAnomaly>,
    /// Devices that say they are cut off from genuine answers, longest first.
    pub stale: Vec<crate::db::models::DeviceRecord>,
}

/// The dashboard of the fleet `scope` sees (narrowed by the vendor to customer `slug`).
pub async fn overview(services: &Services, scope: &Scope, slug: Option<String>) -> Result<Overview, ServiceError> {
    let advisories = exposure::dashboard(services, scope, slug.clone()).await?;
    let (stale_scope, stale_slug) = (scope.clone(), slug.clone());
    let mut anomalies = crate::services::anomalies::list(services, scope, Some(true), None).await?;
    if let (Scope::Vendor, Some(slug)) = (scope, slug) {
        let customer = services
            .db
            .run(move |conn| super::scoped_customer(conn, &Scope::Vendor, Some(&slug)))
            .await?;
        anomalies.retain(|a| Some(&a.anomaly.customer_id) == customer.as_ref());
    }
    let stale = services
        .db
        .run(move |conn| {
            let customer = super::scoped_customer(conn, &stale_scope, stale_slug.as_deref())?;
            Ok::<_, ServiceError>(crate::db::models::DeviceRecord::stale(
                conn,
                customer.as_ref(),
                STALE_LIMIT,
            )?)
        })
        .await?;
    Ok(Overview {
        advisories,
        anomalies,
        stale,
    })
}

/// One open emergency across the customers the caller sees.
#[derive(Clone, Debug)]
pub struct EmergencyProgress {
    pub public_id: String,
    pub title: String,
    pub fix_deadline: Option<DateTime<Utc>>,
    pub counts: Counts,
    /// Per customer with devices of its products, in the order asked for.
    pub customers: Vec<CustomerCounts>,
}

/// How the customers of an emergency are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressOrder {
    /// Most devices still affected first.
    #[default]
    Exposed,
    /// Most devices past the deadline first.
    Overdue,
    /// Largest share fixed first.
    Fixed,
    /// By slug.
    Customer,
}

fn share_fixed(counts: &Counts) -> f64 {
    match counts.concerned() {
        0 => 1.0,
        n => counts.fixed as f64 / n as f64,
    }
}

fn order(customers: &mut [CustomerCounts], by: ProgressOrder) {
    customers.sort_by(|a, b| {
        let (x, y) = (&a.counts, &b.counts);
        let first = match by {
            ProgressOrder::Exposed => y.affected.cmp(&x.affected),
            ProgressOrder::Overdue => y.overdue.cmp(&x.overdue).then(y.affected.cmp(&x.affected)),
            ProgressOrder::Fixed => share_fixed(y).total_cmp(&share_fixed(x)),
            ProgressOrder::Customer => std::cmp::Ordering::Equal,
        };
        first.then_with(|| a.customer.cmp(&b.customer))
    });
}

/// Every published emergency advisory that concerns devices `scope` sees, newest
/// first, with its progress per customer.
pub async fn emergencies(
    services: &Services,
    scope: &Scope,
    by: ProgressOrder,
) -> Result<Vec<EmergencyProgress>, ServiceError> {
    let mut found = Vec::new();
    for mut entry in exposure::dashboard(services, scope, None).await? {
        if !entry.emergency {
            continue;
        }
        order(&mut entry.customers, by);
        found.push(EmergencyProgress {
            public_id: entry.public_id,
            title: entry.advisory.title,
            fix_deadline: entry.fix_deadline,
            counts: entry.counts,
            customers: entry.customers,
        });
    }
    Ok(found)
}

/// A customer on the vendor's list: its live devices and where they stand against
/// the newest open emergency.
pub struct CustomerGlance {
    pub customer: Customer,
    pub devices: i64,
    pub emergency: Option<Counts>,
}

/// The customers `scope` sees with their device counts, and the newest open
/// emergency (public id, title) their counts are against.
pub async fn customers_at_a_glance(
    services: &Services,
    scope: &Scope,
) -> Result<(Vec<CustomerGlance>, Option<(String, String)>), ServiceError> {
    let visible = scope.clone();
    let customers: Vec<Customer> = services
        .db
        .query(Customer::list)
        .await?
        .into_iter()
        .filter(|c| visible.can_see(Some(&c.id)))
        .collect();
    let devices: HashMap<_, _> = services
        .db
        .query(DeviceRecord::count_by_customer)
        .await?
        .into_iter()
        .collect();
    let current = emergencies(services, scope, ProgressOrder::Customer)
        .await?
        .into_iter()
        .next();
    let by_slug: HashMap<String, Counts> = current
        .iter()
        .flat_map(|e| e.customers.iter().map(|c| (c.customer.clone(), c.counts)))
        .collect();
    let glances = customers
        .into_iter()
        .map(|customer| CustomerGlance {
            devices: devices.get(&customer.id).copied().unwrap_or(0),
            emergency: current
                .as_ref()
                .map(|_| by_slug.get(&customer.slug).copied().unwrap_or_default()),
            customer,
        })
        .collect();
    Ok((glances, current.map(|e| (e.public_id, e.title))))
}
