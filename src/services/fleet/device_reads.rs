//! Reading the fleet: one device as its caller may see it (with its history,
//! reports, pulls and anomalies) and the device list with its filters.

use crate::db::models::{
    AnomalyRecord, DeviceFilter, DevicePull, DeviceRecord, ListedAnomaly, NamedDevice, ObservationRecord, Product,
    PullFailureRecord, ReportRecord,
};
use crate::db::DbConnection;
use crate::domain::Scope;
use crate::ids::DeviceId;
use crate::services::{ServiceError, Services};

use super::cache::DeviceEntry;
use super::scoped_customer;

/// Rows of history a device page shows.
pub const HISTORY_ROWS: i64 = 200;

/// A device visible to `scope`, with its customer's slug; 404 otherwise.
pub fn visible(conn: &mut DbConnection, scope: &Scope, id: &str) -> Result<(DeviceRecord, String), ServiceError> {
    let not_found = || ServiceError::NotFound("device");
    let id: DeviceId = id.parse().map_err(|_| not_found())?;
    let (device, slug) = DeviceRecord::find_with_customer(conn, &id)?.ok_or_else(not_found)?;
    if scope.can_see(Some(&device.customer_id)) {
        Ok((device, slug))
    } else {
        Err(not_found())
    }
}

/// The authenticated device's own name and its customer's slug (what the fleet
/// in memory does not hold).
pub async fn identity(services: &Services, device: &DeviceEntry) -> Result<(String, String), ServiceError> {
    let id = device.id();
    let (record, slug) = services
        .db
        .query(move |conn| DeviceRecord::find_with_customer(conn, &id))
        .await?
        .ok_or(ServiceError::NotFound("device"))?;
    Ok((record.name, slug))
}

/// One device with its labels, product, version history and install reports.
pub struct DeviceDetail {
    pub device: DeviceRecord,
    pub customer: String,
    pub product: Product,
    pub labels: Vec<(String, String)>,
    pub observations: Vec<ObservationRecord>,
    pub reports: Vec<(ReportRecord, String)>,
    /// Where and when it is pulled, and how the pulls go.
    pub pull: Option<DevicePull>,
    pub pull_failures: Vec<PullFailureRecord>,
    pub anomalies: Vec<ListedAnomaly>,
    /// Every published advisory of its product: exposed or not, and why.
    pub advisories: Vec<super::exposure::DeviceAdvisory>,
}

/// The device `id` as `scope` may see it.
pub async fn detail(services: &Services, scope: &Scope, id: String) -> Result<DeviceDetail, ServiceError> {
    let scope = scope.clone();
    let stall = super::exposure::stall_after(services)?;
    services
        .db
        .run(move |conn| {
            let (device, customer) = visible(conn, &scope, &id)?;
            let product = Product::find(conn, &device.product_id)?.ok_or(ServiceError::NotFound("product"))?;
            Ok(DeviceDetail {
                labels: DeviceRecord::labels(conn, &device.id)?,
                observations: ObservationRecord::of_device(conn, &device.id, HISTORY_ROWS)?,
                reports: ReportRecord::of_device(conn, &device.id, HISTORY_ROWS)?,
                pull: DevicePull::find(conn, &device.id)?,
                pull_failures: PullFailureRecord::of_device(conn, &device.id, HISTORY_ROWS)?,
                anomalies: AnomalyRecord::list(conn, None, Some(&device.id), None, HISTORY_ROWS)?,
                advisories: super::exposure::of_device(conn, &device, stall)?,
                device,
                customer,
                product,
            })
        })
        .await
}

/// What a device list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// A customer's slug: the vendor's filter (a customer admin sees its own anyway).
    pub customer: Option<String>,
    pub label: Option<(String, String)>,
    pub version: Option<String>,
    pub page: u32,
    pub per_page: u32,
    /// A keyset page instead of `page`.
    pub keyset: Option<super::exposure::Keyset>,
}

/// One page of the live devices `scope` may see, by name, and how many there are.
pub async fn list(
    services: &Services,
    scope: &Scope,
    query: ListQuery,
) -> Result<(Vec<NamedDevice>, i64), ServiceError> {
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let customer = scoped_customer(conn, &scope, query.customer.as_deref())?;
            let filter = DeviceFilter {
                customer,
                label: query.label,
                versions: query.version.map(|v| vec![v]),
                ..DeviceFilter::default()
            };
            match &query.keyset {
                Some(keyset) => {
                    let total = DeviceRecord::count_matching(conn, &filter)?;
                    Ok((
                        super::exposure::keyset_page(conn, &filter, keyset, query.per_page)?,
                        total,
                    ))
                }
                None => {
                    let offset = i64::from(query.page.max(1) - 1) * i64::from(query.per_page);
                    Ok(DeviceRecord::list(conn, &filter, offset, i64::from(query.per_page))?)
                }
            }
        })
        .await
}
