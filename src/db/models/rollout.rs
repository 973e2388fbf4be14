//! Rollouts of patches: the rollout, its waves as the vendor planned them, which
//! devices each wave took in, customers' own choices, and the history of what was
//! done to it.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{
    customers, device_offers, devices, install_reports, rollout_customers, rollout_history, rollout_members,
    rollout_waves, rollouts,
};
use crate::db::DbConnection;
use crate::domain::{ReportState, RolloutAction, RolloutState};
use crate::ids::{CustomerId, DeviceId, PatchId, ProductId, RolloutId, RolloutStepId};

use super::ROWS_PER_INSERT;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = rollouts)]
pub struct RolloutRecord {
    pub id: RolloutId,
    pub patch_id: PatchId,
    #[diesel(deserialize_as = String)]
    pub state: RolloutState,
    pub current_wave: Option<i32>,
    pub reason: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// Takes in only devices exposed to an advisory the patch fixes; customers that
    /// opted in install it whatever their windows say.
    pub emergency_lane: bool,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = rollout_waves)]
pub struct WaveRecord {
    pub rollout_id: RolloutId,
    pub position: i32,
    /// The wave as the vendor gave it, JSON.
    pub spec: String,
    pub opened_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = rollout_history)]
pub struct StepRecord {
    pub id: RolloutStepId,
    pub rollout_id: RolloutId,
    pub at: NaiveDateTime,
    pub actor: String,
    #[diesel(deserialize_as = String)]
    pub action: RolloutAction,
    #[diesel(deserialize_as = String)]
    pub state: RolloutState,
    pub wave: Option<i32>,
    pub reason: Option<String>,
}

/// A customer's choice within a rollout.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = rollout_customers)]
pub struct CustomerChoice {
    pub rollout_id: RolloutId,
    pub customer_id: CustomerId,
    /// None of its devices is offered the patch anew.
    pub hold: bool,
    /// All of its devices are offered it while the rollout runs.
    pub accelerate: bool,
    pub updated_by: String,
    pub updated_at: NaiveDateTime,
}

impl CustomerChoice {
    /// Stores `customer`'s choice in `rollout`, replacing the one before.
    pub fn set(conn: &mut DbConnection, choice: &CustomerChoice) -> QueryResult<()> {
        diesel::delete(rollout_customers::table.find((&choice.rollout_id, &choice.customer_id))).execute(conn)?;
        diesel::insert_into(rollout_customers::table)
            .values((
                rollout_customers::rollout_id.eq(&choice.rollout_id),
                rollout_customers::customer_id.eq(&choice.customer_id),
                rollout_customers::hold.eq(choice.hold),
                rollout_customers::accelerate.eq(choice.accelerate),
                rollout_customers::updated_by.eq(&choice.updated_by),
                rollout_customers::updated_at.eq(choice.updated_at),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// The choices made in `rollout`.
    pub fn of(conn: &mut DbConnection, rollout: &RolloutId) -> QueryResult<Vec<CustomerChoice>> {
        rollout_customers::table
            .filter(rollout_customers::rollout_id.eq(rollout))
            .select(CustomerChoice::as_select())
            .load(conn)
    }
}

/// A live device of a product, as a wave's selection needs it.
#[derive(Clone, Debug, Queryable)]
pub struct Candidate {
    pub id: DeviceId,
    pub customer_slug: String,
    /// JSON object, as stored.
    pub labels: String,
    pub version: Option<String>,
    pub platform: Option<String>,
}

/// A member of a wave and where it stands with the rollout's patch.
#[derive(Clone, Debug)]
pub struct MemberState {
    pub device: DeviceId,
    pub customer: CustomerId,
    pub wave: i32,
    pub first_offered_at: Option<NaiveDateTime>,
    /// The device's latest report for the patch.
    pub report: Option<(ReportState, NaiveDateTime)>,
}

impl RolloutRecord {
    /// Stores a new rollout in draft with its waves (`spec` JSON each, in order).
    pub fn insert(
        conn: &mut DbConnection,
        id: &RolloutId,
        patch: &PatchId,
        created_by: &str,
        waves: &[String],
        emergency_lane: bool,
        at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::insert_into(rollouts::table)
            .values((
                rollouts::id.eq(id),
                rollouts::patch_id.eq(patch),
                rollouts::emergency_lane.eq(emergency_lane),
                rollouts::state.eq(RolloutState::Draft.as_str()),
                rollouts::created_by.eq(created_by),
                rollouts::created_at.eq(at),
                rollouts::updated_at.eq(at),
            ))
            .execute(conn)?;
        for (position, spec) in waves.iter().enumerate() {
            diesel::insert_into(rollout_waves::table)
                .values((
                    rollout_waves::rollout_id.eq(id),
                    rollout_waves::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
                    rollout_waves::spec.eq(spec),
                ))
                .execute(conn)?;
        }
        Ok(())
    }

    pub fn find(conn: &mut DbConnection, id: &RolloutId) -> QueryResult<Option<RolloutRecord>> {
        rollouts::table
            .find(id)
            .select(RolloutRecord::as_select())
            .first(conn)
            .optional()
    }

    /// The rollout of `patch` in force (draft, running or paused), if any.
    pub fn in_force_for(conn: &mut DbConnection, patch: &PatchId) -> QueryResult<Option<RolloutRecord>> {
        rollouts::table
            .filter(rollouts::patch_id.eq(patch))
            .filter(rollouts::state.eq_any(in_force()))
            .select(RolloutRecord::as_select())
            .first(conn)
            .optional()
    }

    /// Every rollout, oldest first.
    pub fn all(conn: &mut DbConnection) -> QueryResult<Vec<RolloutRecord>> {
        rollouts::table
            .order((rollouts::created_at.asc(), rollouts::id.asc()))
            .select(RolloutRecord::as_select())
            .load(conn)
    }

    /// The rollouts that are running, oldest first.
    pub fn running(conn: &mut DbConnection) -> QueryResult<Vec<RolloutRecord>> {
        rollouts::table
            .filter(rollouts::state.eq(RolloutState::Running.as_str()))
            .order(rollouts::created_at.asc())
            .select(RolloutRecord::as_select())
            .load(conn)
    }

    /// The rollouts of `patch`, newest first.
    pub fn of_patch(conn: &mut DbConnection, patch: &PatchId) -> QueryResult<Vec<RolloutRecord>> {
        rollouts::table
            .filter(rollouts::patch_id.eq(patch))
            .order(rollouts::created_at.desc())
            .select(RolloutRecord::as_select())
            .load(conn)
    }

    /// Puts `patch` in the place of the rollout's patch, when the rollout is in `state`
    /// with its patch `replaced`; how many rows changed.
    pub fn replace_patch(
        conn: &mut DbConnection,
        id: &RolloutId,
        state: RolloutState,
        replaced: &PatchId,
        patch: &PatchId,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(rollouts::table)
            .filter(rollouts::id.eq(id))
            .filter(rollouts::state.eq(state.as_str()))
            .filter(rollouts::patch_id.eq(replaced))
            .set((rollouts::patch_id.eq(patch), rollouts::updated_at.eq(at)))
            .execute(conn)
    }

    /// Moves the rollout to `state` (with the open wave and reason) when it is in
    /// one of `from` with the open wave `at_wave`; how many rows moved (0: another
    /// change came first).
    #[allow(clippy::too_many_arguments)]
    pub fn transition(
        conn: &mut DbConnection,
        id: &RolloutId,
        from: &[RolloutState],
        at_wave: Option<i32>,
        state: RolloutState,
        wave: Option<i32>,
        reason: Option<&str>,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
        let mut query = diesel::update(rollouts::table)
            .filter(rollouts::id.eq(id))
            .filter(rollouts::state.eq_any(from))
            .into_boxed();
        query = match at_wave {
            Some(open) => query.filter(rollouts::current_wave.eq(open)),
            None => query.filter(rollouts::current_wave.is_null()),
        };
        query
            .set((
                rollouts::state.eq(state.as_str()),
                rollouts::current_wave.eq(wave),
                rollouts::reason.eq(reason),
                rollouts::updated_at.eq(at),
            ))
            .execute(conn)
    }
}

fn in_force() -> Vec<&'static str> {
    RolloutState::ALL
        .iter()
        .filter(|s| s.in_force())
        .map(|s| s.as_str())
        .collect()
}

impl WaveRecord {
    pub fn of(conn: &mut DbConnection, rollout: &RolloutId) -> QueryResult<Vec<WaveRecord>> {
        rollout_waves::table
            .filter(rollout_waves::rollout_id.eq(rollout))
            .order(rollout_waves::position.asc())
            .select(WaveRecord::as_select())
            .load(conn)
    }

    pub fn open(conn: &mut DbConnection, rollout: &RolloutId, position: i32, at: NaiveDateTime) -> QueryResult<()> {
        diesel::update(rollout_waves::table.find((rollout, position)))
            .set(rollout_waves::opened_at.eq(at))
            .execute(conn)?;
        Ok(())
    }

    pub fn close(conn: &mut DbConnection, rollout: &RolloutId, position: i32, at: NaiveDateTime) -> QueryResult<()> {
        diesel::update(rollout_waves::table.find((rollout, position)))
            .set(rollout_waves::closed_at.eq(at))
            .execute(conn)?;
        Ok(())
    }
}

impl StepRecord {
    #[allow(clippy::too_many_arguments)]
    pub fn insert(
        conn: &mut DbConnection,
        rollout: &RolloutId,
        actor: &str,
        action: RolloutAction,
        state: RolloutState,
        wave: Option<i32>,
        reason: Option<&str>,
        at: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::insert_into(rollout_history::table)
            .values((
                rollout_history::id.eq(RolloutStepId::generate()),
                rollout_history::rollout_id.eq(rollout),
                rollout_history::at.eq(at),
                rollout_history::actor.eq(actor),
                rollout_history::action.eq(action.as_str()),
                rollout_history::state.eq(state.as_str()),
                rollout_history::wave.eq(wave),
                rollout_history::reason.eq(reason),
            ))
            .execute(conn)?;
        Ok(())
    }

    pub fn of(conn: &mut DbConnection, rollout: &RolloutId) -> QueryResult<Vec<StepRecord>> {
        rollout_history::table
            .filter(rollout_history::rollout_id.eq(rollout))
            .order((rollout_history::at.asc(), rollout_history::id.asc()))
            .select(StepRecord::as_select())
            .load(conn)
    }
}

/// Live devices of `product` (created after `after`, when given) that are members
/// of `rollout` (`members`) or are not.
pub fn candidates(
    conn: &mut DbConnection,
    rollout: &RolloutId,
    product: &ProductId,
    after: Option<NaiveDateTime>,
    members: bool,
) -> QueryResult<Vec<Candidate>> {
    let of_rollout = rollout_members::table
        .filter(rollout_members::rollout_id.eq(rollout))
        .select(rollout_members::device_id);
    let mut query = devices::table
        .inner_join(customers::table.on(customers::id.eq(devices::customer_id)))
        .filter(devices::product_id.eq(product))
        .filter(devices::decommissioned_at.is_null())
        .select((
            devices::id,
            customers::slug,
            devices::labels,
            devices::version,
            devices::platform,
        ))
        .into_boxed();
    query = if members {
        query.filter(devices::id.eq_any(of_rollout))
    } else {
        query.filter(devices::id.ne_all(of_rollout))
    };
    if let Some(after) = after {
        query = query.filter(devices::created_at.gt(after));
    }
    query.load(conn)
}

/// Adds `devices` to wave `wave` of `rollout`.
pub fn add_members(
    conn: &mut DbConnection,
    rollout: &RolloutId,
    devices: &[DeviceId],
    wave: i32,
    at: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<_> = devices
        .iter()
        .map(|device| {
            (
                rollout_members::rollout_id.eq(rollout),
                rollout_members::device_id.eq(device),
                rollout_members::wave.eq(wave),
                rollout_members::joined_at.eq(at),
            )
        })
        .collect();
    insert_many!(&mut *conn, rollout_members::table, &rows);
    Ok(())
}

/// The devices that were offered `patch` (as far as the flush has written).
pub fn offered(conn: &mut DbConnection, patch: &PatchId) -> QueryResult<Vec<DeviceId>> {
    device_offers::table
        .filter(device_offers::patch_id.eq(patch))
        .select(device_offers::device_id)
        .load(conn)
}

/// The customers with devices in `rollout`.
pub fn member_customers(conn: &mut DbConnection, rollout: &RolloutId) -> QueryResult<Vec<CustomerId>> {
    rollout_members::table
        .inner_join(devices::table)
        .filter(rollout_members::rollout_id.eq(rollout))
        .select(devices::customer_id)
        .distinct()
        .load(conn)
}

/// Every member of `rollout` with its wave (device ids and waves).
pub fn members(conn: &mut DbConnection, rollout: &RolloutId) -> QueryResult<Vec<(DeviceId, i32)>> {
    rollout_members::table
        .filter(rollout_members::rollout_id.eq(rollout))
        .select((rollout_members::device_id, rollout_members::wave))
        .load(conn)
}

/// The members of `rollout`'s waves up to `through`, each with its offer of `patch`
/// and its latest report for it.
pub fn member_states(
    conn: &mut DbConnection,
    rollout: &RolloutId,
    patch: &PatchId,
    through: i32,
) -> QueryResult<Vec<MemberState>> {
    let rows: Vec<(DeviceId, CustomerId, i32, Option<NaiveDateTime>)> = rollout_members::table
        .inner_join(devices::table)
        .left_join(
            device_offers::table.on(device_offers::device_id
                .eq(rollout_members::device_id)
                .and(device_offers::patch_id.eq(patch))),
        )
        .filter(rollout_members::rollout_id.eq(rollout))
        .filter(rollout_members::wave.le(through))
        .select((
            rollout_members::device_id,
            devices::customer_id,
            rollout_members::wave,
            device_offers::first_offered_at.nullable(),
        ))
        .load(conn)?;
    let reports: Vec<(DeviceId, String, NaiveDateTime, Option<NaiveDateTime>)> = install_reports::table
        .filter(install_reports::patch_id.eq(patch))
        .filter(
            install_reports::device_id.eq_any(
                rollout_members::table
                    .filter(rollout_members::rollout_id.eq(rollout))
                    .filter(rollout_members::wave.le(through))
                    .select(rollout_members::device_id),
            ),
        )
        .select((
            install_reports::device_id,
            install_reports::state,
            install_reports::reported_at,
            install_reports::last_reported_at,
        ))
        .load(conn)?;
    let mut latest: std::collections::HashMap<DeviceId, (ReportState, NaiveDateTime)> =
        std::collections::HashMap::with_capacity(reports.len());
    for (device, state, reported, last) in reports {
        let Ok(state) = state.parse::<ReportState>() else {
            continue;
        };
        let at = last.unwrap_or(reported).max(reported);
        let newer = latest.get(&device).is_none_or(|(_, seen)| at >= *seen);
        if newer {
            latest.insert(device, (state, at));
        }
    }
    Ok(rows
        .into_iter()
        .map(|(device, customer, wave, first_offered_at)| MemberState {
            report: latest.get(&device).copied(),
            device,
            customer,
            wave,
            first_offered_at,
        })
        .collect())
}
