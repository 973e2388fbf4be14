//! Exposure: where each device stands against a published advisory (affected,
//! fixed, unaffected, unknown; overdue past the fix deadline; claimed-not-running
//! when it reported the fix installed but still runs an affected version; stalled
//! when an install step is older than the stall limit). Counted from device groups
//! (customer, product, version, latest report) read from an index, so only the
//! distinct versions are parsed, however large the fleet; the device list filters by
//! the versions found in a state. Also the hourly counts the adoption charts draw.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};

use crate::db::models::exposure::{customer_slugs, device_groups, stalled_groups, DeviceGroup, ExposurePoint};
use crate::db::models::{now, AdvisoryRecord, DeviceFilter, DeviceRecord, NamedDevice, PatchRecord, Product};
use crate::db::DbConnection;
use crate::domain::advisory::{Advisory, Affected, Completeness};
use crate::domain::fleet::classify;
use crate::domain::version::VersionScheme;
use crate::domain::{AdvisoryStatus, ExposureState, ReportState, Scope};
use crate::ids::{AdvisoryId, CustomerId, PatchId, ProductId};
use crate::services::advisories::{current_input, find, Catalogue};
use crate::services::{ServiceError, Services};

use super::scoped_customer;

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
}

/// The rules of one published advisory, ready to classify devices.
struct Rules {
    record: AdvisoryRecord,
    public_id: String,
    advisory: Advisory,
    /// Its products: id → (scheme, affected versions).
    products: HashMap<ProductId, (VersionScheme, Affected)>,
    fixing: HashSet<PatchId>,
    overdue: bool,
    stall_before: NaiveDateTime,
    states: HashMap<(ProductId, Option<String>), ExposureState>,
}

impl Rules {
    fn load(
        conn: &mut DbConnection,
        catalogue: &Catalogue,
        record: AdvisoryRecord,
        stall_after: TimeDelta,
    ) -> Result<Rules, ServiceError> {
        let public_id = record.public_id.clone().ok_or(ServiceError::NotFound("advisory"))?;
        let advisory = catalogue.validate(&current_input(&record)?, Completeness::Publish)?;
        let mut products = HashMap::new();
        for affected in &advisory.affected {
            if let Some(product) = catalogue.get(&affected.product.slug) {
                products.insert(product.id.clone(), (product.scheme(), affected.clone()));
            }
        }
        let fixing = PatchRecord::fixing(conn, &record.id)?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let at = now();
        let overdue = advisory.fix_deadline.is_some_and(|d| d.naive_utc() <= at);
        Ok(Rules {
            record,
            public_id,
            advisory,
            products,
            fixing,
            overdue,
            stall_before: at - stall_after,
            states: HashMap::new(),
        })
    }

    fn product_ids(&self) -> Vec<ProductId> {
        self.products.keys().cloned().collect()
    }

    fn state(&mut self, product: &ProductId, version: Option<&String>) -> ExposureState {
        let key = (product.clone(), version.cloned());
        if let Some(state) = self.states.get(&key) {
            return *state;
        }
        let state = match self.products.get(product) {
            None => ExposureState::Unaffected,
            Some((scheme, affected)) => {
                let parsed = version.and_then(|v| scheme.parse(v).ok());
                classify(affected, parsed.as_ref())
            }
        };
        self.states.insert(key, state);
        state
    }

    fn fixes(&self, patch: Option<&PatchId>) -> bool {
        patch.is_some_and(|p| self.fixing.contains(p))
    }

    /// Reads the device groups of this advisory's products (of one customer, or of
    /// all) and counts them by customer; the groups are returned for device filters.
    fn tally(
        &mut self,
        conn: &mut DbConnection,
        customer: Option<&CustomerId>,
    ) -> Result<(Vec<DeviceGroup>, HashMap<CustomerId, Counts>), ServiceError> {
        let products = self.product_ids();
        let groups = device_groups(conn, &products, customer)?;
        // Only devices in the middle of installing this advisory's fix can be stalled;
        // the groups say whether there are any.
        let installing = groups.iter().any(|g| {
            self.fixes(g.report_patch_id.as_ref())
                && g.report_state.as_deref().is_some_and(|s| in_progress().contains(&s))
        });
        let stalled = if installing {
            stalled_groups(conn, &products, customer, self.stall_before, &in_progress())?
        } else {
            Vec::new()
        };
        let counts = self.count(&groups, &stalled);
        Ok((groups, counts))
    }

    /// Counts groups by customer.
    fn count(&mut self, groups: &[DeviceGroup], stalled: &[DeviceGroup]) -> HashMap<CustomerId, Counts> {
        let mut by_customer: HashMap<CustomerId, Counts> = HashMap::new();
        for group in groups {
            let state = self.state(&group.product_id, group.version.as_ref());
            let counts = by_customer.entry(group.customer_id.clone()).or_default();
            let n = group.count;
            match state {
                ExposureState::Affected => {
                    counts.affected += n;
                    if self.overdue {
                        counts.overdue += n;
                    }
                    if group.report_state.as_deref() == Some(ReportState::Installed.as_str())
                        && self.fixes(group.report_patch_id.as_ref())
                    {
                        counts.claimed_not_running += n;
                    }
                }
                ExposureState::Fixed => counts.fixed += n,
                ExposureState::Unaffected => counts.unaffected += n,
                ExposureState::Unknown => counts.unknown += n,
            }
        }
        for group in stalled {
            if self.state(&group.product_id, group.version.as_ref()) == ExposureState::Affected
                && self.fixes(group.report_patch_id.as_ref())
            {
                by_customer.entry(group.customer_id.clone()).or_default().stalled += group.count;
            }
        }
        by_customer
    }

    /// The device filter for `state`, from the versions seen in `groups`.
    fn filter(
        &mut self,
        groups: &[DeviceGroup],
        state: Option<StateFilter>,
        customer: Option<&CustomerId>,
    ) -> Option<DeviceFilter> {
        let mut filter = DeviceFilter {
            customer: customer.cloned(),
            products: Some(self.product_ids()),
            ..DeviceFilter::default()
        };
        let Some(state) = state else {
            return Some(filter);
        };
        let wanted = match state {
            StateFilter::Exposure(state) => state,
            StateFilter::Overdue if self.overdue => ExposureState::Affected,
            StateFilter::Overdue => return None,
            StateFilter::ClaimedNotRunning => {
                filter.report_states = Some(vec![ReportState::Installed.as_str().to_owned()]);
                filter.report_patches = Some(self.fixing.iter().cloned().collect());
                ExposureState::Affected
            }
            StateFilter::Stalled => {
                filter.report_states = Some(in_progress().into_iter().map(str::to_owned).collect());
                filter.report_patches = Some(self.fixing.iter().cloned().collect());
                filter.report_before = Some(self.stall_before);
                ExposureState::Affected
            }
        };
        let mut versions: HashMap<ProductId, Vec<String>> = HashMap::new();
        for group in groups {
            if self.state(&group.product_id, group.version.as_ref()) != wanted {
                continue;
            }
            match &group.version {
                Some(version) => versions
                    .entry(group.product_id.clone())
                    .or_default()
                    .push(version.clone()),
                None => filter.unknown_version = true,
            }
        }
        filter.product_versions = Some(
            versions
                .into_iter()
                .map(|(product, mut list)| {
                    list.sort();
                    list.dedup();
                    (product, list)
                })
                .collect(),
        );
        Some(filter)
    }

    fn exposed(&mut self, (device, customer, product): NamedDevice) -> ExposedDevice {
        let state = self.state(&device.product_id, device.version.as_ref());
        let affected = state == ExposureState::Affected;
        let fixes = self.fixes(device.report_patch_id.as_ref());
        let report = device.report_state.0;
        ExposedDevice {
            overdue: affected && self.overdue,
            claimed_not_running: affected && fixes && report == Some(ReportState::Installed),
            stalled: affected
                && fixes
                && report.is_some_and(ReportState::in_progress)
                && device.report_at.is_some_and(|at| at < self.stall_before),
            state,
            device,
            customer,
            product,
        }
    }
}

/// How many devices a state filter selects, from the counts.
fn counted(counts: &Counts, state: Option<StateFilter>) -> Option<i64> {
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
fn in_progress() -> Vec<&'static str> {
    ReportState::ALL
        .iter()
        .filter(|s| s.in_progress())
        .map(|s| s.as_str())
        .collect()
}

fn published(conn: &mut DbConnection, key: &str) -> Result<AdvisoryRecord, ServiceError> {
    let record = find(conn, key)?;
    if record.status != AdvisoryStatus::Published {
        return Err(ServiceError::NotFound("advisory"));
    }
    Ok(record)
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
            let catalogue = Catalogue::load(conn)?;
            let mut rules = Rules::load(conn, &catalogue, record, stall)?;
            let customer = scoped_customer(conn, &scope, query.customer.as_deref())?;
            let (groups, by_customer) = rules.tally(conn, customer.as_ref())?;
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
                    let offset = i64::from(query.page.max(1) - 1) * i64::from(query.per_page);
                    let limit = i64::from(query.per_page);
                    match counted(&counts, query.state) {
                        // The counts already say how many match: no second count.
                        Some(total) if query.label.is_none() && query.version.is_none() => {
                            (DeviceRecord::page(conn, &filter, offset, limit)?, total)
                        }
                        _ => DeviceRecord::list(conn, &filter, offset, limit)?,
                    }
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

/// One advisory on a dashboard: its counts and its adoption chart.
#[derive(Clone, Debug)]
pub struct DashboardEntry {
    pub advisory: AdvisoryRecord,
    pub public_id: String,
    pub emergency: bool,
    pub fix_deadline: Option<DateTime<Utc>>,
    pub counts: Counts,
    /// (time, fixed, affected) from publication to now.
    pub history: Vec<(NaiveDateTime, i64, i64)>,
}

/// The published advisories that concern the fleet `scope` sees (narrowed by the
/// vendor to the customer `slug`), emergencies first, then newest first.
pub async fn dashboard(
    services: &Services,
    scope: &Scope,
    slug: Option<String>,
) -> Result<Vec<DashboardEntry>, ServiceError> {
    let stall = stall_after(services)?;
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let customer = scoped_customer(conn, &scope, slug.as_deref())?;
            let catalogue = Catalogue::load(conn)?;
            let mut entries = Vec::new();
            for record in AdvisoryRecord::list_all(conn)? {
                if record.status != AdvisoryStatus::Published {
                    continue;
                }
                let mut rules = Rules::load(conn, &catalogue, record, stall)?;
                if rules.products.is_empty() {
                    continue;
                }
                let mut counts = Counts::default();
                for c in rules.tally(conn, customer.as_ref())?.1.values() {
                    counts.add(c);
                }
                if counts.concerned() == 0 {
                    continue;
                }
                let mut history: Vec<(NaiveDateTime, i64, i64)> = Vec::new();
                for point in ExposurePoint::of_advisory(conn, &rules.record.id, customer.as_ref())? {
                    match history.last_mut() {
                        Some(last) if last.0 == point.recorded_at => {
                            last.1 += point.fixed;
                            last.2 += point.affected;
                        }
                        _ => history.push((point.recorded_at, point.fixed, point.affected)),
                    }
                }
                if let Some(published) = rules.record.first_published_at {
                    if history.first().is_none_or(|first| first.0 > published) {
                        history.insert(0, (published, 0, 0));
                    }
                }
                history.push((now(), counts.fixed, counts.affected));
                entries.push(DashboardEntry {
                    public_id: rules.public_id.clone(),
                    emergency: rules.advisory.emergency,
                    fix_deadline: rules.advisory.fix_deadline,
                    advisory: rules.record,
                    counts,
                    history,
                });
            }
            entries.sort_by(|a, b| {
                b.emergency
                    .cmp(&a.emergency)
                    .then_with(|| b.advisory.first_published_at.cmp(&a.advisory.first_published_at))
            });
            Ok(entries)
        })
        .await
}

/// Records this hour's counts of every published advisory, per customer: the
/// points of the adoption charts. Safe to run twice (the hour's point is replaced).
pub async fn snapshot(services: &Services) -> Result<usize, ServiceError> {
    let stall = stall_after(services)?;
    let every = TimeDelta::from_std(services.config.exposure_point_interval)
        .map_err(|e| ServiceError::internal("exposure_point_interval", e))?;
    services
        .db
        .run(move |conn| {
            let slot = now()
                .duration_trunc(every)
                .map_err(|e| ServiceError::internal("the point's time", e))?;
            let catalogue = Catalogue::load(conn)?;
            let mut written = 0;
            for record in AdvisoryRecord::list_all(conn)? {
                if record.status != AdvisoryStatus::Published {
                    continue;
                }
                let advisory_id: AdvisoryId = record.id.clone();
                let mut rules = Rules::load(conn, &catalogue, record, stall)?;
                for (customer, counts) in rules.tally(conn, None)?.1 {
                    ExposurePoint::upsert(
                        conn,
                        &ExposurePoint {
                            advisory_id: advisory_id.clone(),
                            customer_id: customer,
                            recorded_at: slot,
                            affected: counts.affected,
                            fixed: counts.fixed,
                            unaffected: counts.unaffected,
                            unknown: counts.unknown,
                        },
                    )?;
                    written += 1;
                }
            }
            Ok(written)
        })
        .await
}

/// Folds the device tallies that exposure counts are summed from; returns how
/// many rows were folded.
pub async fn fold_tallies(services: &Services) -> Result<usize, ServiceError> {
    services
        .db
        .run(|conn| Ok::<_, ServiceError>(crate::db::models::exposure::fold_tallies(conn)?))
        .await
}

/// The products the customer's devices may be enrolled with, for forms.
pub async fn products(services: &Services) -> Result<Vec<Product>, ServiceError> {
    Ok(services.db.query(Product::list).await?)
}

/// One published advisory's counts per customer, for the events that follow from
/// them (who an advisory concerns, whose deadline passed).
pub struct AdvisoryCounts {
    pub advisory: AdvisoryRecord,
    pub public_id: String,
    pub title: String,
    pub emergency: bool,
    pub fix_deadline: Option<DateTime<Utc>>,
    pub overdue: bool,
    pub customers: HashMap<CustomerId, Counts>,
}

/// The counts per customer of the published advisory `record`, installs stalled
/// after `stall`; `None` when it names no product the catalogue knows.
pub fn advisory_counts(
    conn: &mut DbConnection,
    catalogue: &Catalogue,
    record: AdvisoryRecord,
    stall: TimeDelta,
) -> Result<Option<AdvisoryCounts>, ServiceError> {
    if record.status != AdvisoryStatus::Published {
        return Ok(None);
    }
    let mut rules = Rules::load(conn, catalogue, record, stall)?;
    if rules.products.is_empty() {
        return Ok(None);
    }
    let customers = rules.tally(conn, None)?.1;
    Ok(Some(AdvisoryCounts {
        public_id: rules.public_id.clone(),
        title: rules.advisory.title.clone(),
        emergency: rules.advisory.emergency,
        fix_deadline: rules.advisory.fix_deadline,
        overdue: rules.overdue,
        customers,
        advisory: rules.record,
    }))
}

/// The published emergency advisories that affect each of `devices` (by product and
/// running version): device id → advisory public ids.
pub fn emergencies_affecting(
    conn: &mut DbConnection,
    devices: &[DeviceRecord],
    stall: TimeDelta,
) -> Result<HashMap<crate::ids::DeviceId, Vec<String>>, ServiceError> {
    let mut found: HashMap<crate::ids::DeviceId, Vec<String>> = HashMap::new();
    if devices.is_empty() {
        return Ok(found);
    }
    let catalogue = Catalogue::load(conn)?;
    for record in AdvisoryRecord::list_all(conn)? {
        if record.status != AdvisoryStatus::Published {
            continue;
        }
        let mut rules = Rules::load(conn, &catalogue, record, stall)?;
        if !rules.advisory.emergency {
            continue;
        }
        for device in devices {
            if rules.state(&device.product_id, device.version.as_ref()) == ExposureState::Affected {
                found
                    .entry(device.id.clone())
                    .or_default()
                    .push(rules.public_id.clone());
            }
        }
    }
    Ok(found)
}
