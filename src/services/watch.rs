//! The fleet watch, run every minute: devices whose pulls have failed longer than
//! `unreachable_after` become `device.unreachable` events (once per outage) and,
//! while an emergency advisory affects their version, anomalies; customers with
//! devices still affected past an advisory's fix deadline get `deadline.overdue`
//! (once per advisory).

use chrono::TimeDelta;

use crate::db::models::{now, utc, AdvisoryRecord, DevicePull, DeviceRecord};
use crate::db::DbConnection;
use crate::domain::EventType;
use crate::services::advisories::KnownProducts;
use crate::services::fleet::exposure::{advisory_counts, emergencies_affecting};
use crate::services::{anomalies, webhooks, ServiceError, Services};

fn unreachable(conn: &mut DbConnection, after: TimeDelta, stall: TimeDelta) -> Result<usize, ServiceError> {
    let pulls = DevicePull::unreachable_before(conn, now() - after)?;
    let mut devices = Vec::new();
    for pull in &pulls {
        if let Some(device) = DeviceRecord::find(conn, &pull.device_id)?.filter(|d| d.decommissioned_at.is_none()) {
            devices.push((device, pull));
        }
    }
    let records: Vec<DeviceRecord> = devices.iter().map(|(d, _)| d.clone()).collect();
    let emergencies = emergencies_affecting(conn, &records, stall)?;
    let mut raised = 0;
    for (device, pull) in devices {
        let Some(since) = pull.unreachable_since else { continue };
        let key = format!("device.unreachable:{}:{}", device.id, since.and_utc().timestamp());
        let data = serde_json::json!({
            "device": {"id": device.id, "name": device.name},
            "unreachable_since": utc(since).to_rfc3339(),
            "failures": pull.failures,
            "last_failure": pull.last_failure,
            "version": device.version,
        });
        raised += usize::from(webhooks::emit(
            conn,
            &device.customer_id,
            EventType::DeviceUnreachable,
            data,
            Some(key),
        )?);
        for advisory in emergencies.get(&device.id).into_iter().flatten() {
            raised += usize::from(anomalies::unreachable_in_emergency(conn, &device, since, advisory)?);
        }
    }
    Ok(raised)
}

fn overdue(conn: &mut DbConnection, stall: TimeDelta) -> Result<usize, ServiceError> {
    let catalogue = KnownProducts::load(conn)?;
    let mut raised = 0;
    for record in AdvisoryRecord::list_all(conn)? {
        let Some(counts) = advisory_counts(conn, &catalogue, record, stall)? else {
            continue;
        };
        if !counts.overdue {
            continue;
        }
        for (customer, c) in &counts.customers {
            if c.affected == 0 {
                continue;
            }
            let key = format!("deadline.overdue:{}:{customer}", counts.public_id);
            let data = serde_json::json!({
                "advisory": {
                    "id": counts.public_id,
                    "title": counts.title,
                    "emergency": counts.emergency,
                    "fix_deadline": counts.fix_deadline.map(|d| d.to_rfc3339()),
                },
                "exposure": c,
            });
            raised += usize::from(webhooks::emit(
                conn,
                customer,
                EventType::DeadlineOverdue,
                data,
                Some(key),
            )?);
        }
    }
    Ok(raised)
}

/// Looks for unreachable devices and passed deadlines; returns how many events
/// and flags it raised.
pub async fn run(services: &Services) -> Result<usize, ServiceError> {
    let after = TimeDelta::from_std(services.config.unreachable_after)
        .map_err(|e| ServiceError::internal("unreachable_after", e))?;
    let stall = crate::services::fleet::exposure::stall_after(services)?;
    services
        .db
        .run(move |conn| {
            let unreachable = conn.write_transaction(|conn| unreachable(conn, after, stall))?;
            let overdue = conn.write_transaction(|conn| overdue(conn, stall))?;
            Ok(unreachable + overdue)
        })
        .await
}
