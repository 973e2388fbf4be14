//! Where devices are pulled from and the scheduler's state for each, and the failed
//! pulls of a device's history. Work is claimed with a lease: a claim sets who
//! holds a due row and until when, in one statement, skipping rows another instance
//! has locked (PostgreSQL) — so two instances never claim the same device, and a
//! holder that dies leaves work that becomes claimable when its lease runs out.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};

use crate::db::schema::{customers, device_pulls, pull_failures};
use crate::db::DbConnection;
use crate::domain::schedule::Schedule;
use crate::domain::PullFailure;
use crate::ids::{CustomerId, DeviceId, ObservationId};

/// A nullable schedule column read as a checked schedule: a stored schedule that no
/// longer parses fails the read instead of being taken for "none".
#[derive(Debug, FromSqlRow)]
#[diesel(sql_type = Nullable<Text>)]
pub struct StoredSchedule(Option<Schedule>);

impl<DB> FromSql<Nullable<Text>, DB> for StoredSchedule
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
        let schedule = Schedule::parse(&text).map_err(|why| format!("stored schedule: {why}"))?;
        Ok(StoredSchedule(Some(schedule)))
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match bytes {
            Some(bytes) => Self::from_sql(bytes),
            None => Ok(StoredSchedule(None)),
        }
    }
}

impl From<StoredSchedule> for Option<Schedule> {
    fn from(stored: StoredSchedule) -> Self {
        stored.0
    }
}

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = device_pulls, primary_key(device_id))]
pub struct DevicePull {
    pub device_id: DeviceId,
    pub customer_id: CustomerId,
    pub url: String,
    #[diesel(deserialize_as = StoredSchedule)]
    pub schedule: Option<Schedule>,
    pub token_sealed: Option<String>,
    pub due_at: Option<NaiveDateTime>,
    pub lease_holder: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub failures: i32,
    pub unreachable_since: Option<NaiveDateTime>,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub last_success_at: Option<NaiveDateTime>,
    pub last_failure: Option<String>,
}

/// A claimed pull: what the puller needs.
#[derive(Clone, Debug, QueryableByName)]
pub struct Claimed {
    #[diesel(sql_type = Text)]
    pub device_id: DeviceId,
    #[diesel(sql_type = Text)]
    pub customer_id: CustomerId,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Nullable<Text>, deserialize_as = StoredSchedule)]
    pub schedule: Option<Schedule>,
    #[diesel(sql_type = Nullable<Text>)]
    pub token_sealed: Option<String>,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub due_at: Option<NaiveDateTime>,
    #[diesel(sql_type = Integer)]
    pub failures: i32,
    #[diesel(sql_type = Nullable<Timestamp>)]
    pub unreachable_since: Option<NaiveDateTime>,
}

/// Where and how a device is pulled, as set by its customer's admin.
#[derive(Clone, Debug)]
pub struct PullTarget {
    pub url: String,
    pub schedule: Option<Schedule>,
    pub token_sealed: Option<String>,
}

/// How one pull ended, as the scheduler writes it back.
#[derive(Clone, Debug)]
pub struct PullDone {
    pub device: DeviceId,
    pub at: NaiveDateTime,
    pub next_due: Option<NaiveDateTime>,
    /// `None` for a success; the reason and its detail for a failure.
    pub failure: Option<(PullFailure, String)>,
}

impl DevicePull {
    pub fn find(conn: &mut DbConnection, device: &DeviceId) -> QueryResult<Option<DevicePull>> {
        device_pulls::table
            .find(device)
            .select(DevicePull::as_select())
            .first(conn)
            .optional()
    }

    /// Sets (or, with `None`, removes) where `device` is pulled from, due at `due`.
    pub fn set(
        conn: &mut DbConnection,
        device: &DeviceId,
        customer: &CustomerId,
        target: Option<&PullTarget>,
        due: Option<NaiveDateTime>,
    ) -> QueryResult<()> {
        diesel::delete(device_pulls::table.find(device)).execute(conn)?;
        if let Some(target) = target {
            diesel::insert_into(device_pulls::table)
                .values((
                    device_pulls::device_id.eq(device),
                    device_pulls::customer_id.eq(customer),
                    device_pulls::url.eq(&target.url),
                    device_pulls::schedule.eq(target.schedule.as_ref().map(Schedule::as_str)),
                    device_pulls::token_sealed.eq(&target.token_sealed),
                    device_pulls::due_at.eq(due),
                    device_pulls::failures.eq(0),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    /// Removes `device`'s pull (a decommissioned device is not pulled).
    pub fn remove(conn: &mut DbConnection, device: &DeviceId) -> QueryResult<usize> {
        diesel::delete(device_pulls::table.find(device)).execute(conn)
    }

    /// Claims up to `limit` pulls due at `at` that no live lease holds, for
    /// `holder` until `until`: in turns between customers (every customer's first
    /// due pull before any customer's second), at most `per_customer` of each, none
    /// of the customers in `full` (comma-separated: those with as many in flight as
    /// they may have). The lease is re-checked in the update itself.
    pub fn claim_due(
        conn: &mut DbConnection,
        holder: &str,
        at: NaiveDateTime,
        until: NaiveDateTime,
        limit: i64,
        per_customer: i64,
        full: &str,
    ) -> QueryResult<Vec<Claimed>> {
        const COLUMNS: &str =
            "device_id, customer_id, url, schedule, token_sealed, due_at, failures, unreachable_since";
        let sql = match conn {
            DbConnection::Sqlite(_) => format!(
                "UPDATE device_pulls SET lease_holder = ?, lease_until = ? WHERE device_id IN (\
                 SELECT device_id FROM (SELECT device_id, due_at, ROW_NUMBER() OVER \
                 (PARTITION BY customer_id ORDER BY due_at) AS turn FROM device_pulls WHERE due_at <= ? \
                 AND (lease_until IS NULL OR lease_until < ?) \
                 AND instr(',' || ? || ',', ',' || customer_id || ',') = 0) \
                 WHERE turn <= ? ORDER BY turn, due_at LIMIT ?) \
                 AND (lease_until IS NULL OR lease_until < ?) RETURNING {COLUMNS}"
            ),
            DbConnection::Postgres(_) => format!(
                "UPDATE device_pulls SET lease_holder = $1, lease_until = $2 WHERE device_id IN (\
                 SELECT p.device_id FROM device_pulls p JOIN (SELECT device_id, ROW_NUMBER() OVER \
                 (PARTITION BY customer_id ORDER BY due_at) AS turn FROM device_pulls WHERE due_at <= $3 \
                 AND (lease_until IS NULL OR lease_until < $4) \
                 AND NOT (customer_id = ANY(string_to_array($5, ',')))) ranked ON ranked.device_id = p.device_id \
                 WHERE ranked.turn <= $6 ORDER BY ranked.turn, p.due_at LIMIT $7 \
                 FOR UPDATE OF p SKIP LOCKED) \
                 AND (lease_until IS NULL OR lease_until < $8) RETURNING {COLUMNS}"
            ),
        };
        diesel::sql_query(sql)
            .bind::<Text, _>(holder)
            .bind::<Timestamp, _>(until)
            .bind::<Timestamp, _>(at)
            .bind::<Timestamp, _>(at)
            .bind::<Text, _>(full)
            .bind::<BigInt, _>(per_customer)
            .bind::<BigInt, _>(limit)
            .bind::<Timestamp, _>(at)
            .load(conn)
    }

    /// Claims `device` for a pull now, whatever its schedule, unless another pull of
    /// it is under way; `None` then.
    pub fn claim_one(
        conn: &mut DbConnection,
        device: &DeviceId,
        holder: &str,
        at: NaiveDateTime,
        until: NaiveDateTime,
    ) -> QueryResult<Option<DevicePull>> {
        let claimed = diesel::update(
            device_pulls::table
                .find(device)
                .filter(device_pulls::lease_until.is_null().or(device_pulls::lease_until.lt(at))),
        )
        .set((
            device_pulls::lease_holder.eq(holder),
            device_pulls::lease_until.eq(until),
        ))
        .execute(conn)?;
        if claimed == 0 {
            return Ok(None);
        }
        Self::find(conn, device)
    }

    /// Writes back how pulls ended and releases their leases: a success clears the
    /// failure count; a failure counts, and marks the device unreachable from its
    /// first failure on. Only the lease `holder` still holds is written.
    pub fn finish(conn: &mut DbConnection, holder: &str, done: &[PullDone]) -> QueryResult<()> {
        use std::collections::HashMap;
        let mut successes: HashMap<(NaiveDateTime, Option<NaiveDateTime>), Vec<&DeviceId>> = HashMap::new();
        for d in done.iter().filter(|d| d.failure.is_none()) {
            successes.entry((d.at, d.next_due)).or_default().push(&d.device);
        }
        for ((at, next_due), devices) in successes {
            for chunk in devices.chunks(10_000) {
                diesel::update(
                    device_pulls::table
                        .filter(device_pulls::device_id.eq_any(chunk))
                        .filter(device_pulls::lease_holder.eq(holder)),
                )
                .set((
                    device_pulls::due_at.eq(next_due),
                    device_pulls::lease_holder.eq(None::<String>),
                    device_pulls::lease_until.eq(None::<NaiveDateTime>),
                    device_pulls::failures.eq(0),
                    device_pulls::unreachable_since.eq(None::<NaiveDateTime>),
                    device_pulls::last_attempt_at.eq(at),
                    device_pulls::last_success_at.eq(at),
                    device_pulls::last_failure.eq(None::<String>),
                ))
                .execute(conn)?;
            }
        }
        for d in done {
            let Some((reason, detail)) = &d.failure else { continue };
            let updated = diesel::update(
                device_pulls::table
                    .find(&d.device)
                    .filter(device_pulls::lease_holder.eq(holder)),
            )
            .set((
                device_pulls::due_at.eq(d.next_due),
                device_pulls::lease_holder.eq(None::<String>),
                device_pulls::lease_until.eq(None::<NaiveDateTime>),
                device_pulls::failures.eq(device_pulls::failures + 1),
                device_pulls::last_attempt_at.eq(d.at),
                device_pulls::last_failure.eq(format!("{reason}: {detail}")),
            ))
            .execute(conn)?;
            if updated == 1 {
                diesel::update(
                    device_pulls::table
                        .find(&d.device)
                        .filter(device_pulls::unreachable_since.is_null()),
                )
                .set(device_pulls::unreachable_since.eq(d.at))
                .execute(conn)?;
                PullFailureRecord::record(conn, &d.device, *reason, detail, d.at)?;
            }
        }
        Ok(())
    }

    /// Devices whose pulls have been failing since before `before`.
    pub fn unreachable_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<Vec<DevicePull>> {
        device_pulls::table
            .filter(device_pulls::unreachable_since.le(before))
            .select(DevicePull::as_select())
            .load(conn)
    }

    /// Moves the next pull of the customer's devices that follow its default
    /// schedule to `due`.
    pub fn reschedule_defaults(
        conn: &mut DbConnection,
        customer: &CustomerId,
        due: Option<NaiveDateTime>,
    ) -> QueryResult<usize> {
        diesel::update(
            device_pulls::table
                .filter(device_pulls::customer_id.eq(customer))
                .filter(device_pulls::schedule.is_null()),
        )
        .set(device_pulls::due_at.eq(due))
        .execute(conn)
    }

    /// The default schedule of customer `id`.
    pub fn default_schedule(conn: &mut DbConnection, id: &CustomerId) -> QueryResult<Option<Schedule>> {
        customers::table
            .find(id)
            .select(customers::pull_schedule)
            .first::<StoredSchedule>(conn)
            .optional()
            .map(|stored| stored.and_then(Option::from))
    }

    pub fn set_default_schedule(
        conn: &mut DbConnection,
        id: &CustomerId,
        schedule: Option<&Schedule>,
    ) -> QueryResult<usize> {
        diesel::update(customers::table.find(id))
            .set(customers::pull_schedule.eq(schedule.map(Schedule::as_str)))
            .execute(conn)
    }
}

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = pull_failures)]
pub struct PullFailureRecord {
    pub id: ObservationId,
    pub device_id: DeviceId,
    #[diesel(deserialize_as = String)]
    pub reason: PullFailure,
    pub detail: String,
    pub first_at: NaiveDateTime,
    pub last_at: NaiveDateTime,
    pub times: i64,
}

impl PullFailureRecord {
    /// Records a failed pull, folding it into the device's latest failure row when
    /// that failed the same way and nothing succeeded since.
    pub fn record(
        conn: &mut DbConnection,
        device: &DeviceId,
        reason: PullFailure,
        detail: &str,
        at: NaiveDateTime,
    ) -> QueryResult<()> {
        let latest: Option<PullFailureRecord> = pull_failures::table
            .filter(pull_failures::device_id.eq(device))
            .order((pull_failures::last_at.desc(), pull_failures::id.desc()))
            .select(PullFailureRecord::as_select())
            .first(conn)
            .optional()?;
        let success_since = |row: &PullFailureRecord, conn: &mut DbConnection| -> QueryResult<bool> {
            device_pulls::table
                .find(device)
                .select(device_pulls::last_success_at)
                .first::<Option<NaiveDateTime>>(conn)
                .optional()
                .map(|s| s.flatten().is_some_and(|s| s > row.last_at))
        };
        match latest {
            Some(row) if row.reason == reason && row.detail == detail && !success_since(&row, conn)? => {
                diesel::update(pull_failures::table.find(&row.id))
                    .set((
                        pull_failures::last_at.eq(at.max(row.last_at)),
                        pull_failures::times.eq(pull_failures::times + 1),
                    ))
                    .execute(conn)?;
            }
            _ => {
                diesel::insert_into(pull_failures::table)
                    .values((
                        pull_failures::id.eq(ObservationId::generate()),
                        pull_failures::device_id.eq(device),
                        pull_failures::reason.eq(reason.as_str()),
                        pull_failures::detail.eq(detail),
                        pull_failures::first_at.eq(at),
                        pull_failures::last_at.eq(at),
                        pull_failures::times.eq(1i64),
                    ))
                    .execute(conn)?;
            }
        }
        Ok(())
    }

    /// A device's failed pulls, newest first.
    pub fn of_device(conn: &mut DbConnection, device: &DeviceId, limit: i64) -> QueryResult<Vec<PullFailureRecord>> {
        pull_failures::table
            .filter(pull_failures::device_id.eq(device))
            .order((pull_failures::last_at.desc(), pull_failures::id.desc()))
            .limit(limit)
            .select(PullFailureRecord::as_select())
            .load(conn)
    }
}
