//! The rows exposure is computed from: devices counted by customer, product, running
//! version and latest install report (a handful of groups however large the fleet,
//! summed from `device_tallies`, which triggers keep in step with `devices`), and the
//! counts per time slot the adoption charts draw.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{customers, device_tallies, devices, exposure_history};
use crate::db::DbConnection;
use crate::ids::{AdvisoryId, CustomerId, PatchId, ProductId};

/// Devices that share customer, product, version and latest report.
#[derive(Clone, Debug, Queryable)]
pub struct DeviceGroup {
    pub customer_id: CustomerId,
    pub product_id: ProductId,
    pub version: Option<String>,
    pub report_state: Option<String>,
    pub report_patch_id: Option<PatchId>,
    pub count: i64,
}

/// Groups the devices a query selects; each group's count last.
macro_rules! grouped {
    ($query:expr) => {
        $query
            .group_by((
                devices::customer_id,
                devices::product_id,
                devices::version,
                devices::report_state,
                devices::report_patch_id,
            ))
            .select((
                devices::customer_id,
                devices::product_id,
                devices::version,
                devices::report_state,
                devices::report_patch_id,
                diesel::dsl::count_star(),
            ))
    };
}

/// The columns a device tally is grouped by.
macro_rules! tally_group {
    () => {
        (
            device_tallies::customer_id,
            device_tallies::product_id,
            device_tallies::version,
            device_tallies::report_state,
            device_tallies::report_patch_id,
        )
    };
}

/// Counts the live devices of `products` (of one customer, or of all) by group,
/// summing the tallies (a few rows per group until they are folded).
pub fn device_groups(
    conn: &mut DbConnection,
    products: &[ProductId],
    customer: Option<&CustomerId>,
) -> QueryResult<Vec<DeviceGroup>> {
    macro_rules! tallied {
        ($query:expr) => {
            $query.group_by(tally_group!()).select((
                device_tallies::customer_id,
                device_tallies::product_id,
                device_tallies::version,
                device_tallies::report_state,
                device_tallies::report_patch_id,
                diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(SUM(devices) AS BIGINT)"),
            ))
        };
    }
    let tallies = device_tallies::table.filter(device_tallies::product_id.eq_any(products));
    let groups: Vec<DeviceGroup> = match customer {
        Some(customer) => tallied!(tallies.filter(device_tallies::customer_id.eq(customer))).load(conn)?,
        None => tallied!(tallies).load(conn)?,
    };
    Ok(groups.into_iter().filter(|g| g.count != 0).collect())
}

/// Sums the tallies written so far into one row per group, so that reading them
/// stays a few rows however many changes there were. Returns how many rows went.
/// One fold runs at a time; what it removes and what it sums are the same rows
/// (one statement on PostgreSQL; under SQLite's write lock on SQLite), so a tally
/// written meanwhile is never lost, only left for the next fold.
pub fn fold_tallies(conn: &mut DbConnection) -> QueryResult<usize> {
    let columns = "customer_id, product_id, version, report_state, report_patch_id";
    conn.write_transaction(|conn| {
        if matches!(conn, DbConnection::Postgres(_)) {
            // Two instances folding at once would both insert the sums.
            diesel::sql_query("SELECT pg_advisory_xact_lock(7202611281)").execute(conn)?;
        }
        let last: Option<i64> = device_tallies::table
            .select(diesel::dsl::max(device_tallies::id))
            .first(conn)?;
        let Some(last) = last else { return Ok(0) };
        // Rows and sum per group: nothing to fold when each group is one row already.
        let groups: Vec<(i64, i64)> = device_tallies::table
            .filter(device_tallies::id.le(last))
            .group_by(tally_group!())
            .select((
                diesel::dsl::count_star(),
                diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(SUM(devices) AS BIGINT)"),
            ))
            .load(conn)?;
        if groups.iter().all(|(rows, devices)| *rows == 1 && *devices != 0) {
            return Ok(0);
        }
        let rows: i64 = groups.iter().map(|(rows, _)| rows).sum();
        let sums = |from: &str| {
            format!("SELECT {columns}, SUM(devices) FROM {from} GROUP BY {columns} HAVING SUM(devices) <> 0")
        };
        match conn {
            DbConnection::Postgres(_) => {
                diesel::sql_query(format!(
                    "WITH gone AS (DELETE FROM device_tallies WHERE id <= {last} RETURNING {columns}, devices) \
                     INSERT INTO device_tallies ({columns}, devices) {}",
                    sums("gone")
                ))
                .execute(conn)?;
            }
            DbConnection::Sqlite(_) => {
                diesel::sql_query(format!(
                    "INSERT INTO device_tallies ({columns}, devices) {}",
                    sums(&format!("device_tallies WHERE id <= {last}"))
                ))
                .execute(conn)?;
                diesel::delete(device_tallies::table.filter(device_tallies::id.le(last))).execute(conn)?;
            }
        }
        Ok(usize::try_from(rows).unwrap_or(0))
    })
}

/// Like [`device_groups`], counting only devices whose latest report is one of
/// `states` and older than `before`: installs that stalled.
pub fn stalled_groups(
    conn: &mut DbConnection,
    products: &[ProductId],
    customer: Option<&CustomerId>,
    before: NaiveDateTime,
    states: &[&str],
) -> QueryResult<Vec<DeviceGroup>> {
    let stalled = devices::table
        .filter(devices::decommissioned_at.is_null())
        .filter(devices::product_id.eq_any(products))
        .filter(devices::report_state.is_not_null())
        .filter(devices::report_state.eq_any(states))
        .filter(devices::report_at.lt(before));
    match customer {
        Some(customer) => grouped!(stalled.filter(devices::customer_id.eq(customer))).load(conn),
        None => grouped!(stalled).load(conn),
    }
}

/// Slugs of customers by id.
pub fn customer_slugs(conn: &mut DbConnection, ids: &[CustomerId]) -> QueryResult<Vec<(CustomerId, String)>> {
    customers::table
        .filter(customers::id.eq_any(ids))
        .select((customers::id, customers::slug))
        .load(conn)
}

/// One point of an adoption chart.
#[derive(Clone, Debug, Queryable, Insertable)]
#[diesel(table_name = exposure_history)]
pub struct ExposurePoint {
    pub advisory_id: AdvisoryId,
    pub customer_id: CustomerId,
    pub recorded_at: NaiveDateTime,
    pub affected: i64,
    pub fixed: i64,
    pub unaffected: i64,
    pub unknown: i64,
}

impl ExposurePoint {
    /// Records the point, replacing one of the same time slot.
    pub fn upsert(conn: &mut DbConnection, point: &ExposurePoint) -> QueryResult<()> {
        diesel::delete(
            exposure_history::table
                .filter(exposure_history::advisory_id.eq(&point.advisory_id))
                .filter(exposure_history::customer_id.eq(&point.customer_id))
                .filter(exposure_history::recorded_at.eq(point.recorded_at)),
        )
        .execute(conn)?;
        diesel::insert_into(exposure_history::table)
            .values(point)
            .execute(conn)
            .map(drop)
    }

    /// The points of one advisory, oldest first, of one customer or all.
    pub fn of_advisory(
        conn: &mut DbConnection,
        advisory: &AdvisoryId,
        customer: Option<&CustomerId>,
    ) -> QueryResult<Vec<ExposurePoint>> {
        let mut query = exposure_history::table
            .filter(exposure_history::advisory_id.eq(advisory))
            .into_boxed();
        if let Some(customer) = customer {
            query = query.filter(exposure_history::customer_id.eq(customer));
        }
        query
            .order(exposure_history::recorded_at.asc())
            .select((
                exposure_history::advisory_id,
                exposure_history::customer_id,
                exposure_history::recorded_at,
                exposure_history::affected,
                exposure_history::fixed,
                exposure_history::unaffected,
                exposure_history::unknown,
            ))
            .load(conn)
    }
}
