//! One device against every published advisory of its product: where it stands and
//! why, as its page says it — the range its version falls in, a fix it claims but
//! does not run, an install that stalled, a view of the log gone stale.

use chrono::TimeDelta;

use crate::db::models::{AdvisoryRecord, DeviceRecord};
use crate::db::DbConnection;
use crate::domain::fleet::explain;
use crate::domain::{AdvisoryStatus, ExposureState};
use crate::services::advisories::KnownProducts;
use crate::services::ServiceError;

use super::Rules;

/// Where one device stands against one advisory, and why.
#[derive(Clone, Debug)]
pub struct DeviceAdvisory {
    pub public_id: String,
    pub title: String,
    pub emergency: bool,
    pub state: ExposureState,
    pub overdue: bool,
    pub claimed_not_running: bool,
    pub stalled: bool,
    /// The reasons, each a sentence's part: the version against the ranges first.
    pub reasons: Vec<String>,
}

impl DeviceAdvisory {
    /// Whether the device is exposed: affected by its running version.
    pub fn exposed(&self) -> bool {
        self.state == ExposureState::Affected
    }
}

/// Every published advisory that names `device`'s product, emergencies first, then
/// exposed before not, then newest.
pub fn of_device(
    conn: &mut DbConnection,
    device: &DeviceRecord,
    stall_after: TimeDelta,
) -> Result<Vec<DeviceAdvisory>, ServiceError> {
    let catalogue = KnownProducts::load(conn)?;
    let mut found = Vec::new();
    for record in AdvisoryRecord::list_all(conn)? {
        if record.status != AdvisoryStatus::Published {
            continue;
        }
        let mut rules = Rules::load(conn, &catalogue, record, stall_after)?;
        if !rules.concerns(&device.customer_id) {
            continue;
        }
        let Some((scheme, affected)) = rules.products.get(&device.product_id) else {
            continue;
        };
        let parsed = device.version.as_deref().and_then(|v| scheme.parse(v).ok());
        let mut reasons = vec![explain(affected, parsed.as_ref(), device.version.as_deref())];
        let placed = rules.exposed((device.clone(), String::new(), String::new()));
        if placed.claimed_not_running {
            reasons.push("it reported the fix installed, yet still runs an affected version".to_owned());
        }
        if placed.stalled {
            reasons.push("its install of the fix has not moved on for longer than the stall limit".to_owned());
        }
        if placed.overdue {
            reasons.push("the fix deadline has passed".to_owned());
        }
        if device.stale_since.is_some() {
            reasons.push(
                "it says it holds no fresh, genuine tree head (stale, since the time above), so it may not be hearing of the fix"
                    .to_owned(),
            );
        }
        found.push((
            rules.record.first_published_at,
            DeviceAdvisory {
                public_id: rules.public_id.clone(),
                title: rules.advisory.title.clone(),
                emergency: rules.advisory.emergency,
                state: placed.state,
                overdue: placed.overdue,
                claimed_not_running: placed.claimed_not_running,
                stalled: placed.stalled,
                reasons,
            },
        ));
    }
    found.sort_by(|(a_at, a), (b_at, b)| {
        b.emergency
            .cmp(&a.emergency)
            .then_with(|| b.exposed().cmp(&a.exposed()))
            .then_with(|| b_at.cmp(a_at))
    });
    Ok(found.into_iter().map(|(_, advisory)| advisory).collect())
}
