//! The counts other capabilities read: an advisory's exposure per customer (for
//! announcements and the deadline watch), and the emergencies affecting devices.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};

use crate::db::models::{AdvisoryRecord, DeviceRecord};
use crate::db::DbConnection;
use crate::domain::{AdvisoryStatus, ExposureState};
use crate::ids::CustomerId;
use crate::services::advisories::KnownProducts;
use crate::services::ServiceError;

use super::Counts;
use super::Rules;

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
    catalogue: &KnownProducts,
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
    let catalogue = KnownProducts::load(conn)?;
    for record in AdvisoryRecord::list_all(conn)? {
        if record.status != AdvisoryStatus::Published {
            continue;
        }
        let mut rules = Rules::load(conn, &catalogue, record, stall)?;
        if !rules.advisory.emergency {
            continue;
        }
        for device in devices {
            if rules.concerns(&device.customer_id)
                && rules.state(&device.product_id, device.version.as_ref()) == ExposureState::Affected
            {
                found
                    .entry(device.id.clone())
                    .or_default()
                    .push(rules.public_id.clone());
            }
        }
    }
    Ok(found)
}
