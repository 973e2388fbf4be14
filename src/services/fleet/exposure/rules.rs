//! The rules of one published advisory, loaded once, that place each device group
//! (product, version, latest report) as affected, fixed, unaffected or unknown, and
//! tally them per customer.

use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, TimeDelta};

use crate::db::models::exposure::{device_groups, stalled_groups, DeviceGroup};
use crate::db::models::{now, AdvisoryRecord, DeviceFilter, NamedDevice, PatchRecord};
use crate::db::DbConnection;
use crate::domain::advisory::{Advisory, Affected, Completeness};
use crate::domain::fleet::classify;
use crate::domain::version::VersionScheme;
use crate::domain::{ExposureState, ReportState};
use crate::ids::{CustomerId, PatchId, ProductId};
use crate::services::advisories::{current_input, KnownProducts};
use crate::services::ServiceError;

use super::{in_progress, Counts, ExposedDevice, StateFilter};

/// The rules of one published advisory, ready to classify devices.
pub(super) struct Rules {
    pub(super) record: AdvisoryRecord,
    pub(super) public_id: String,
    pub(super) advisory: Advisory,
    /// Its products: id → (scheme, affected versions).
    pub(super) products: HashMap<ProductId, (VersionScheme, Affected)>,
    pub(super) fixing: HashSet<PatchId>,
    pub(super) overdue: bool,
    pub(super) stall_before: NaiveDateTime,
    pub(super) states: HashMap<(ProductId, Option<String>), ExposureState>,
    /// The customers a restricted (TLP:AMBER or RED) advisory is for: for every other
    /// customer it does not exist. `None` for a TLP:WHITE advisory.
    pub(super) readers: Option<HashSet<CustomerId>>,
}

impl Rules {
    pub(super) fn load(
        conn: &mut DbConnection,
        catalogue: &KnownProducts,
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
        let readers = if record.tlp.restricted() {
            Some(AdvisoryRecord::readers(conn, &record.id)?.into_iter().collect())
        } else {
            None
        };
        Ok(Rules {
            readers,
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

    /// Whether the advisory is for `customer`: every customer's, unless restricted.
    pub(super) fn concerns(&self, customer: &CustomerId) -> bool {
        self.readers.as_ref().is_none_or(|readers| readers.contains(customer))
    }

    pub(super) fn product_ids(&self) -> Vec<ProductId> {
        self.products.keys().cloned().collect()
    }

    pub(super) fn state(&mut self, product: &ProductId, version: Option<&String>) -> ExposureState {
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

    pub(super) fn fixes(&self, patch: Option<&PatchId>) -> bool {
        patch.is_some_and(|p| self.fixing.contains(p))
    }

    /// Reads the device groups of this advisory's products (of one customer, or of
    /// all) and counts them by customer; the groups are returned for device filters.
    pub(super) fn tally(
        &mut self,
        conn: &mut DbConnection,
        customer: Option<&CustomerId>,
    ) -> Result<(Vec<DeviceGroup>, HashMap<CustomerId, Counts>), ServiceError> {
        let products = self.product_ids();
        let mut groups = device_groups(conn, &products, customer)?;
        groups.retain(|g| self.concerns(&g.customer_id));
        // Only devices in the middle of installing this advisory's fix can be stalled;
        // the groups say whether there are any.
        let installing = groups.iter().any(|g| {
            self.fixes(g.report_patch_id.as_ref())
                && g.report_state.as_deref().is_some_and(|s| in_progress().contains(&s))
        });
        let mut stalled = if installing {
            stalled_groups(conn, &products, customer, self.stall_before, &in_progress())?
        } else {
            Vec::new()
        };
        stalled.retain(|g| self.concerns(&g.customer_id));
        let counts = self.count(&groups, &stalled);
        Ok((groups, counts))
    }

    /// Counts groups by customer.
    pub(super) fn count(&mut self, groups: &[DeviceGroup], stalled: &[DeviceGroup]) -> HashMap<CustomerId, Counts> {
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
    pub(super) fn filter(
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

    pub(super) fn exposed(&mut self, (device, customer, product): NamedDevice) -> ExposedDevice {
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
