//! Maintenance windows and emergency policies of customers, and the labels of the
//! devices label-scoped windows cover.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{device_labels, devices, emergency_policies, install_places, maintenance_windows};
use crate::db::DbConnection;
use crate::domain::window::WindowInput;
use crate::ids::{CustomerId, DeviceId};

use super::ROWS_PER_INSERT;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = maintenance_windows)]
pub struct WindowRecord {
    pub customer_id: CustomerId,
    pub position: i32,
    /// The window as the customer gave it, JSON.
    pub spec: String,
    pub updated_by: String,
    pub updated_at: NaiveDateTime,
}

impl WindowRecord {
    /// `customer`'s windows, in its order.
    pub fn of(conn: &mut DbConnection, customer: &CustomerId) -> QueryResult<Vec<WindowRecord>> {
        maintenance_windows::table
            .filter(maintenance_windows::customer_id.eq(customer))
            .order(maintenance_windows::position.asc())
            .select(WindowRecord::as_select())
            .load(conn)
    }

    /// Every customer's windows, each customer's in its order.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<WindowRecord>> {
        maintenance_windows::table
            .order((
                maintenance_windows::customer_id.asc(),
                maintenance_windows::position.asc(),
            ))
            .select(WindowRecord::as_select())
            .load(conn)
    }

    /// Whether one of `customer`'s windows names labels (covers only some devices).
    pub fn any_by_label(conn: &mut DbConnection, customer: &CustomerId) -> QueryResult<bool> {
        Ok(WindowRecord::of(conn, customer)?.iter().any(|r| {
            serde_json::from_str::<WindowInput>(&r.spec).is_ok_and(|w| w.labels.is_some_and(|l| !l.is_empty()))
        }))
    }

    /// Replaces `customer`'s windows with `specs` (JSON each, in order).
    pub fn replace(
        conn: &mut DbConnection,
        customer: &CustomerId,
        specs: &[String],
        by: &str,
        at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::delete(maintenance_windows::table.filter(maintenance_windows::customer_id.eq(customer)))
            .execute(conn)?;
        // Places were taken in windows by their position: those positions name other
        // windows now.
        diesel::delete(install_places::table.filter(install_places::customer_id.eq(customer))).execute(conn)?;
        let rows: Vec<_> = specs
            .iter()
            .enumerate()
            .map(|(position, spec)| {
                (
                    maintenance_windows::customer_id.eq(customer),
                    maintenance_windows::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
                    maintenance_windows::spec.eq(spec),
                    maintenance_windows::updated_by.eq(by),
                    maintenance_windows::updated_at.eq(at),
                )
            })
            .collect();
        insert_many!(&mut *conn, maintenance_windows::table, &rows);
        Ok(())
    }
}

/// Whether a customer's emergencies ignore its windows.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = emergency_policies)]
pub struct EmergencyPolicy {
    pub customer_id: CustomerId,
    pub ignore_windows: bool,
    pub updated_by: String,
    pub updated_at: NaiveDateTime,
}

impl EmergencyPolicy {
    pub fn of(conn: &mut DbConnection, customer: &CustomerId) -> QueryResult<Option<EmergencyPolicy>> {
        emergency_policies::table
            .find(customer)
            .select(EmergencyPolicy::as_select())
            .first(conn)
            .optional()
    }

    /// The customers whose emergencies ignore their windows.
    pub fn ignoring_windows(conn: &mut DbConnection) -> QueryResult<Vec<CustomerId>> {
        emergency_policies::table
            .filter(emergency_policies::ignore_windows.eq(true))
            .select(emergency_policies::customer_id)
            .load(conn)
    }

    /// Stores `customer`'s policy, replacing the one before.
    pub fn set(conn: &mut DbConnection, policy: &EmergencyPolicy) -> QueryResult<()> {
        diesel::delete(emergency_policies::table.find(&policy.customer_id)).execute(conn)?;
        diesel::insert_into(emergency_policies::table)
            .values((
                emergency_policies::customer_id.eq(&policy.customer_id),
                emergency_policies::ignore_windows.eq(policy.ignore_windows),
                emergency_policies::updated_by.eq(&policy.updated_by),
                emergency_policies::updated_at.eq(policy.updated_at),
            ))
            .execute(conn)?;
        Ok(())
    }
}

/// A device's customer and its labels as `(name, value)` pairs.
pub type LabelledDevice = (CustomerId, Vec<(String, String)>);

/// The labels of the live devices of `customers`, by device.
pub fn labels_of_customers(
    conn: &mut DbConnection,
    customers: &[CustomerId],
) -> QueryResult<HashMap<DeviceId, LabelledDevice>> {
    let rows: Vec<(DeviceId, CustomerId, String, String)> = device_labels::table
        .inner_join(devices::table.on(devices::id.eq(device_labels::device_id)))
        .filter(devices::customer_id.eq_any(customers))
        .filter(devices::decommissioned_at.is_null())
        .select((
            device_labels::device_id,
            devices::customer_id,
            device_labels::name,
            device_labels::value,
        ))
        .load(conn)?;
    let mut by_device: HashMap<DeviceId, LabelledDevice> = HashMap::new();
    for (device, customer, name, value) in rows {
        by_device
            .entry(device)
            .or_insert_with(|| (customer, Vec::new()))
            .1
            .push((name, value));
    }
    Ok(by_device)
}

/// Takes a place for `device` in window `position` of `customer`, which lets `cap`
/// of its devices install at once, for as long as the window is open (`expires`);
/// whether the device has one. Run in a write transaction: on PostgreSQL the
/// window's row is locked first, so that instances taking places at the same moment
/// count one after the other (SQLite writes one transaction at a time).
#[allow(clippy::too_many_arguments)]
pub fn take_place(
    conn: &mut DbConnection,
    customer: &CustomerId,
    position: i32,
    device: &DeviceId,
    cap: u32,
    expires: NaiveDateTime,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    if let DbConnection::Postgres(pg) = conn {
        maintenance_windows::table
            .find((customer, position))
            .select(maintenance_windows::position)
            .for_update()
            .first::<i32>(pg)
            .optional()?;
    }
    let in_window = install_places::customer_id
        .eq(customer)
        .and(install_places::window_position.eq(position));
    diesel::delete(
        install_places::table
            .filter(in_window)
            .filter(install_places::expires_at.le(now)),
    )
    .execute(conn)?;
    let held: i64 = install_places::table
        .filter(in_window)
        .filter(install_places::device_id.eq(device))
        .count()
        .get_result(conn)?;
    if held > 0 {
        return Ok(true);
    }
    let taken: i64 = install_places::table.filter(in_window).count().get_result(conn)?;
    if taken >= i64::from(cap) {
        return Ok(false);
    }
    diesel::insert_into(install_places::table)
        .values((
            install_places::customer_id.eq(customer),
            install_places::window_position.eq(position),
            install_places::device_id.eq(device),
            install_places::expires_at.eq(expires),
        ))
        .execute(conn)?;
    Ok(true)
}

/// Gives up every place `device` holds (its install ended).
pub fn release_places(conn: &mut DbConnection, device: &DeviceId) -> QueryResult<usize> {
    diesel::delete(install_places::table.filter(install_places::device_id.eq(device))).execute(conn)
}
