//! What devices were seen running, and the patches offered to them. Consecutive
//! identical observations of a device (same version and image) share one row with a
//! first-seen/last-seen pair and a count, so a device that polls every minute for a
//! year leaves one row, not half a million.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{device_offers, devices, observations};
use crate::db::DbConnection;
use crate::domain::ObservationSource;
use crate::ids::{DeviceId, ObservationId, PatchId};

use super::ROWS_PER_INSERT;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = observations)]
pub struct ObservationRecord {
    pub id: ObservationId,
    pub device_id: DeviceId,
    pub version: String,
    pub image_sha256: Option<String>,
    /// How this version was first learnt in this run of identical observations.
    #[diesel(deserialize_as = String)]
    pub source: ObservationSource,
    #[diesel(deserialize_as = String)]
    pub last_source: ObservationSource,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub times: i64,
}

/// An observation's time as stored: to the second, so that the sightings of one
/// second are written together and histories order the same on both backends.
pub fn to_the_second(at: NaiveDateTime) -> NaiveDateTime {
    chrono::DurationRound::duration_trunc(at, chrono::TimeDelta::seconds(1)).unwrap_or(at)
}

/// A device's latest observation row and its recorded running version.
#[derive(Clone, Debug, Queryable)]
pub struct Latest {
    pub device: DeviceId,
    pub row: ObservationId,
    pub version: String,
    pub image_sha256: Option<String>,
    pub running_version: Option<String>,
    pub running_image: Option<String>,
    pub running_source: Option<String>,
}

/// One observation to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub device: DeviceId,
    pub version: String,
    pub image_sha256: Option<String>,
    pub source: ObservationSource,
    pub last_source: ObservationSource,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub times: i64,
}

impl ObservationRecord {
    /// Inserts `seen` as row `id` of its device's history.
    pub fn insert(conn: &mut DbConnection, id: &ObservationId, seen: &Seen) -> QueryResult<()> {
        Self::insert_all(conn, &[(id, seen)])
    }

    /// Inserts each `seen` as its row of its device's history, in bulk.
    pub fn insert_all(conn: &mut DbConnection, rows: &[(&ObservationId, &Seen)]) -> QueryResult<()> {
        let values: Vec<_> = rows
            .iter()
            .map(|(id, seen)| {
                (
                    observations::id.eq(*id),
                    observations::device_id.eq(&seen.device),
                    observations::version.eq(&seen.version),
                    observations::image_sha256.eq(&seen.image_sha256),
                    observations::source.eq(seen.source.as_str()),
                    observations::last_source.eq(seen.last_source.as_str()),
                    observations::first_seen_at.eq(seen.first_seen_at),
                    observations::last_seen_at.eq(seen.last_seen_at),
                    observations::times.eq(seen.times),
                )
            })
            .collect();
        insert_many!(&mut *conn, observations::table, &values);
        Ok(())
    }

    /// Folds one more sighting into each of the rows `ids` (each a device's latest):
    /// `times` more, last seen at `at` (never earlier than it was), by `source`.
    pub fn fold(
        conn: &mut DbConnection,
        ids: &[&ObservationId],
        at: NaiveDateTime,
        times: i64,
        source: ObservationSource,
    ) -> QueryResult<usize> {
        diesel::update(observations::table.filter(observations::id.eq_any(ids)))
            .set((
                observations::last_seen_at.eq(diesel::dsl::case_when::<_, _, diesel::sql_types::Timestamp>(
                    observations::last_seen_at.lt(at),
                    at,
                )
                .otherwise(observations::last_seen_at)),
                observations::last_source.eq(source.as_str()),
                observations::times.eq(observations::times + times),
            ))
            .execute(conn)
    }

    /// The latest observation row of each of the devices `ids` that has one, with
    /// what the device is recorded as running: what a flush folds into.
    pub fn latest_of(conn: &mut DbConnection, ids: &[&DeviceId]) -> QueryResult<Vec<Latest>> {
        devices::table
            .inner_join(observations::table.on(devices::latest_observation_id.eq(observations::id.nullable())))
            .filter(devices::id.eq_any(ids))
            .select((
                devices::id,
                observations::id,
                observations::version,
                observations::image_sha256,
                devices::version,
                devices::image_sha256,
                devices::version_source,
            ))
            .load(conn)
    }

    /// A device's history, newest first, at most `limit` rows.
    pub fn of_device(conn: &mut DbConnection, device: &DeviceId, limit: i64) -> QueryResult<Vec<ObservationRecord>> {
        observations::table
            .filter(observations::device_id.eq(device))
            .order((observations::last_seen_at.desc(), observations::id.desc()))
            .limit(limit)
            .select(ObservationRecord::as_select())
            .load(conn)
    }
}

/// Patches offered to devices.
pub struct Offers;

impl Offers {
    /// Records that `patch` was offered to `device`, once: a later offer, or the same
    /// offer recorded by another instance at the same moment, changes nothing.
    pub fn record(conn: &mut DbConnection, device: &DeviceId, patch: &PatchId, at: NaiveDateTime) -> QueryResult<()> {
        let sql = match conn {
            DbConnection::Sqlite(_) => {
                "INSERT INTO device_offers (device_id, patch_id, first_offered_at) VALUES (?, ?, ?) \
                 ON CONFLICT (device_id, patch_id) DO NOTHING"
            }
            DbConnection::Postgres(_) => {
                "INSERT INTO device_offers (device_id, patch_id, first_offered_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (device_id, patch_id) DO NOTHING"
            }
        };
        diesel::sql_query(sql)
            .bind::<diesel::sql_types::Text, _>(device)
            .bind::<diesel::sql_types::Text, _>(patch)
            .bind::<diesel::sql_types::Timestamp, _>(at)
            .execute(conn)
            .map(drop)
    }

    pub fn was_offered(conn: &mut DbConnection, device: &DeviceId, patch: &PatchId) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            device_offers::table
                .filter(device_offers::device_id.eq(device))
                .filter(device_offers::patch_id.eq(patch)),
        ))
        .get_result(conn)
    }
}
