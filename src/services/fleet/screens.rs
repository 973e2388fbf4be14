//! What the fleet screens show beyond the API's answers: a device list that is
//! either the fleet or one advisory's exposure, with the advisories to filter by.

use crate::db::models::{AdvisoryRecord, NamedDevice};
use crate::domain::{AdvisoryStatus, ExposureState, Scope};
use crate::services::{ServiceError, Services};

use super::devices::{self, ListQuery};
use super::exposure::{self, ExposureQuery, StateFilter};

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
    let advisories = services
        .db
        .query(AdvisoryRecord::list_all)
        .await?
        .into_iter()
        .filter(|a| a.status == AdvisoryStatus::Published)
        .filter_map(|a| a.public_id.map(|id| (id, a.title)))
        .collect();
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
