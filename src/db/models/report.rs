//! Install reports: each step a device reports while installing a patch, kept in
//! the order they arrived; a step reported again as the latest is counted on it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{install_reports, patches};
use crate::db::DbConnection;
use crate::domain::ReportState;
use crate::ids::{DeviceId, PatchId, ReportId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = install_reports)]
pub struct ReportRecord {
    pub id: ReportId,
    pub device_id: DeviceId,
    pub patch_id: PatchId,
    #[diesel(deserialize_as = String)]
    pub state: ReportState,
    pub version: Option<String>,
    pub message: Option<String>,
    pub reported_at: NaiveDateTime,
    /// How often the device reported this step in a row (1 when it was new).
    pub times: i32,
    /// When it last reported it again.
    pub last_reported_at: Option<NaiveDateTime>,
}

impl ReportRecord {
    /// Records a report: a new row, or when the device's latest report says the same
    /// (patch, state, version, message), one more time on that row. So a device
    /// that repeats itself adds nothing to its history but a count. Returns the
    /// report's id and whether it is new.
    pub fn insert(
        conn: &mut DbConnection,
        device: &DeviceId,
        patch: &PatchId,
        state: ReportState,
        version: Option<&str>,
        message: Option<&str>,
        at: NaiveDateTime,
    ) -> QueryResult<(ReportId, bool)> {
        let latest = install_reports::table
            .filter(install_reports::device_id.eq(device))
            .order(install_reports::id.desc())
            .select(ReportRecord::as_select())
            .first(conn)
            .optional()?;
        if let Some(latest) = latest {
            if latest.patch_id == *patch
                && latest.state == state
                && latest.version.as_deref() == version
                && latest.message.as_deref() == message
            {
                diesel::update(install_reports::table.find(&latest.id))
                    .set((
                        install_reports::times.eq(install_reports::times + 1),
                        install_reports::last_reported_at.eq(at),
                    ))
                    .execute(conn)?;
                return Ok((latest.id, false));
            }
        }
        let id = ReportId::generate();
        diesel::insert_into(install_reports::table)
            .values((
                install_reports::id.eq(&id),
                install_reports::device_id.eq(device),
                install_reports::patch_id.eq(patch),
                install_reports::state.eq(state.as_str()),
                install_reports::version.eq(version),
                install_reports::message.eq(message),
                install_reports::reported_at.eq(at),
            ))
            .execute(conn)?;
        Ok((id, true))
    }

    pub fn find(conn: &mut DbConnection, id: &ReportId) -> QueryResult<ReportRecord> {
        install_reports::table
            .find(id)
            .select(ReportRecord::as_select())
            .first(conn)
    }

    /// A device's reports, newest first, with each patch's target version.
    pub fn of_device(
        conn: &mut DbConnection,
        device: &DeviceId,
        limit: i64,
    ) -> QueryResult<Vec<(ReportRecord, String)>> {
        install_reports::table
            .inner_join(patches::table)
            .filter(install_reports::device_id.eq(device))
            .order(install_reports::id.desc())
            .limit(limit)
            .select((ReportRecord::as_select(), patches::version))
            .load(conn)
    }
}
