//! Rollouts: a published patch offered wave by wave instead of to the whole fleet
//! at once. The vendor plans the waves (share of the applicable devices, labels,
//! customers, named devices) with their thresholds; starting opens the first wave,
//! and the `advance-rollouts` job judges the open wave (see `domain::rollout`):
//! it pauses the rollout when failures cross the error bound, opens the next wave
//! when the success threshold is met (the last one finishes the rollout), and takes
//! devices enrolled since the wave opened into it.
//!
//! A pause, an advance and the finish are announced to the customers with devices
//! in the rollout (webhook events `rollout.paused`, `rollout.advanced`,
//! `rollout.finished`).
//!
//! Wave membership is decided here, when a wave opens, and read by polls from the
//! offer catalogue: a poll never computes it. Every change of state is a log event
//! (`rollout.changed`), so a device that is told "not yet" can check that the
//! rollout holding it back exists and is in the state the answer claims.

use std::collections::HashSet;

use chrono::{NaiveDateTime, TimeDelta};

use crate::db::models::rollout::{self, CustomerChoice, MemberState, RolloutRecord, StepRecord, WaveRecord};
use crate::db::models::{now, Customer, Generations, PatchRecord};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::fleet::Labels;
use crate::domain::rollout::{judge, open_wave, parse_plan, Applicable, Verdict, Wave, WaveCounts, WaveInput};
use crate::domain::{text, Caller, EventType, PatchState, ReportState, RolloutAction, RolloutState};
use crate::ids::{CustomerId, DeviceId, PatchId, RolloutId};
use crate::services::fleet::catalogue::OfferCatalogue;
use crate::services::patches::{self, PatchReader};
use crate::services::{log, webhooks};
use crate::services::{ServiceError, Services};

/// A rollout as the vendor writes it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPlan {
    pub waves: Vec<WaveInput>,
    /// "Everyone exposed, now": only devices exposed to an advisory the patch fixes
    /// are taken in, and customers that opted in install whatever their windows
    /// say. Only for a patch that fixes an emergency advisory.
    #[serde(default)]
    pub emergency_lane: bool,
}

/// What an operator does to a rollout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Start,
    Pause,
    Resume,
    Advance,
    Cancel,
}

/// A wave with where its devices stand.
#[derive(Clone, Debug)]
pub struct WaveView {
    pub position: i32,
    pub spec: WaveInput,
    pub opened_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
    pub counts: WaveCounts,
}

/// A rollout, its waves and its history.
#[derive(Clone, Debug)]
pub struct RolloutView {
    pub rollout: RolloutRecord,
    pub waves: Vec<WaveView>,
    pub history: Vec<StepRecord>,
}

/// Plans a rollout of the patch `patch` (draft or published, not yanked), in draft:
/// from now until it finishes or is cancelled, the patch is offered only as the
/// rollout says.
pub async fn create(
    services: &Services,
    caller: &Caller,
    patch: String,
    plan: RolloutPlan,
) -> Result<RolloutView, ServiceError> {
    let waves = parse_plan(&plan.waves).map_err(|(field, message)| ServiceError::invalid(field, message))?;
    let actor = caller.actor();
    let (view, event) = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let patch = find_patch(conn, &patch)?;
                if patch.state == PatchState::Yanked {
                    return Err(ServiceError::Conflict("a yanked patch cannot be rolled out".into()));
                }
                if let Some(existing) = RolloutRecord::in_force_for(conn, &patch.id)? {
                    return Err(ServiceError::Conflict(format!(
                        "rollout {} of this patch is {}; cancel it first",
                        existing.id, existing.state
                    )));
                }
                check_names(conn, &waves)?;
                let id = RolloutId::generate();
                let at = now();
                let specs = plan
                    .waves
                    .iter()
                    .map(|w| serde_json::to_string(w).map_err(|e| ServiceError::internal("storing a wave", e)))
                    .collect::<Result<Vec<_>, _>>()?;
                if plan.emergency_lane && !fixes_emergency(conn, &patch)? {
                    return Err(ServiceError::invalid(
                        "emergency_lane",
                        "the emergency lane is for a patch that fixes an emergency advisory",
                    ));
                }
                RolloutRecord::insert(conn, &id, &patch.id, &actor.as_text(), &specs, plan.emergency_lane, at)?;
                let event = record(
                    conn,
                    &id,
                    &patch.id,
                    &actor,
                    RolloutAction::Created,
                    RolloutState::Draft,
                    None,
                    None,
                    at,
                )?;
                Generations::catalogue_changed(conn)?;
                Ok::<_, ServiceError>((read(conn, &id)?, event))
            })
        })
        .await?;
    services.reactions.after(services, std::slice::from_ref(&event)).await?;
    tracing::info!(rollout.id = %view.rollout.id, patch.id = %view.rollout.patch_id, user.id = %caller.user, "planned rollout");
    Ok(view)
}

/// The rollout `id`.
pub async fn view(services: &Services, id: String) -> Result<RolloutView, ServiceError> {
    let id = parse_id(&id)?;
    services.db.run(move |conn| read(conn, &id)).await
}

/// The rollouts of the patch `patch`, newest first.
pub async fn of_patch(services: &Services, patch: String) -> Result<Vec<RolloutView>, ServiceError> {
    services
        .db
        .run(move |conn| {
            let patch = find_patch(conn, &patch)?;
            RolloutRecord::of_patch(conn, &patch.id)?
                .iter()
                .map(|r| read(conn, &r.id))
                .collect()
        })
        .await
}

/// Does `command` to the rollout `id`, with the operator's `reason`.
pub async fn act(
    services: &Services,
    caller: &Caller,
    id: String,
    command: Command,
    reason: Option<String>,
    replacement: Option<String>,
) -> Result<RolloutView, ServiceError> {
    let id = parse_id(&id)?;
    let replacement = match (command, replacement) {
        (_, None) => None,
        (Command::Resume, Some(patch)) => Some(
            patch
                .parse::<PatchId>()
                .map_err(|_| ServiceError::invalid("patch_id", format!("`{patch}` is not a patch id")))?,
        ),
        (_, Some(_)) => {
            return Err(ServiceError::invalid(
                "patch_id",
                "only a resume takes a patch in the place of the rollout's",
            ))
        }
    };
    let reason = reason
        .as_deref()
        .map(|r| text::REASON.check("reason", r, false))
        .transpose()?
        .filter(|r| !r.is_empty());
    let actor = caller.actor();
    let catalogue = services.fleet.catalogue();
    let (view, events) = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let mut rollout = RolloutRecord::find(conn, &id)?.ok_or(ServiceError::NotFound("rollout"))?;
                let patch = PatchRecord::find(conn, &rollout.patch_id)?.ok_or(ServiceError::NotFound("patch"))?;
                match (&replacement, patch.state) {
                    (Some(with), _) => {
                        replace_patch(conn, &catalogue, &rollout, &patch, with)?;
                        rollout.patch_id = with.clone();
                    }
                    (None, PatchState::Yanked) if command == Command::Resume => {
                        return Err(ServiceError::Conflict(
                            "the rollout's patch was yanked; resume with a fixed patch as `patch_id`".into(),
                        ))
                    }
                    (None, _) => {}
                }
                let reason = match (&replacement, &reason) {
                    (Some(with), None) => Some(format!("resumed with patch {with} in the place of {}", patch.id)),
                    (Some(with), Some(why)) => Some(format!("{why} (patch {with} in the place of {})", patch.id)),
                    (None, _) => reason.clone(),
                };
                let events = command_on(conn, &catalogue, &rollout, &actor, command, reason.as_deref())?;
                Generations::catalogue_changed(conn)?;
                Ok::<_, ServiceError>((read(conn, &id)?, events))
            })
        })
        .await?;
    services.reactions.after(services, &events).await?;
    tracing::info!(rollout.id = %view.rollout.id, state = %view.rollout.state, user.id = %caller.user, ?command, "rollout changed");
    Ok(view)
}

/// What a customer admin chooses for its own devices in a rollout.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// None of its devices is offered the patch anew.
    #[serde(default)]
    pub hold: bool,
    /// All of its devices the patch applies to are offered it while the rollout runs,
    /// whatever wave they are in.
    #[serde(default)]
    pub accelerate: bool,
}

/// A rollout as one customer sees it: its state, the customer's choice, and where
/// the customer's devices stand in each wave.
#[derive(Clone, Debug)]
pub struct CustomerView {
    pub rollout: RolloutRecord,
    pub choice: Option<CustomerChoice>,
    pub waves: Vec<(i32, WaveCounts)>,
}

/// The rollout `id` as the caller's customer sees it; 404 unless the customer may
/// see its patch.
pub async fn customer_view(services: &Services, caller: &Caller, id: String) -> Result<CustomerView, ServiceError> {
    let customer = crate::services::fleet::customer_of(caller)?.clone();
    let id = parse_id(&id)?;
    services.db.run(move |conn| read_for(conn, &customer, &id)).await
}

/// The most rollouts a customer's screen lists.
pub const CUSTOMER_SCREEN_ROLLOUTS: usize = 50;

/// The rollouts of patches the caller's customer may see, newest first (at most
/// [`CUSTOMER_SCREEN_ROLLOUTS`]), each as the customer sees it.
pub async fn of_customer(services: &Services, caller: &Caller) -> Result<Vec<CustomerView>, ServiceError> {
    let customer = crate::services::fleet::customer_of(caller)?.clone();
    services
        .db
        .run(move |conn| {
            let mut views = Vec::new();
            for record in RolloutRecord::all(conn)?.iter().rev() {
                match read_for(conn, &customer, &record.id) {
                    Ok(view) => views.push(view),
                    Err(ServiceError::NotFound(_)) => continue,
                    Err(other) => return Err(other),
                }
                if views.len() == CUSTOMER_SCREEN_ROLLOUTS {
                    break;
                }
            }
            Ok(views)
        })
        .await
}

/// Records the caller's customer's choice in the rollout `id`: hold its devices
/// back, release them, or take them all in at once.
pub async fn choose(
    services: &Services,
    caller: &Caller,
    id: String,
    input: CustomerInput,
) -> Result<CustomerView, ServiceError> {
    if input.hold && input.accelerate {
        return Err(ServiceError::invalid(
            "accelerate",
            "a customer that holds its devices back cannot also speed them up",
        ));
    }
    let customer = crate::services::fleet::customer_of(caller)?.clone();
    let id = parse_id(&id)?;
    let actor = caller.actor().as_text();
    let view = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let before = read_for(conn, &customer, &id)?;
                let at = now();
                CustomerChoice::set(
                    conn,
                    &CustomerChoice {
                        rollout_id: id.clone(),
                        customer_id: customer.clone(),
                        hold: input.hold,
                        accelerate: input.accelerate,
                        updated_by: actor.clone(),
                        updated_at: at,
                    },
                )?;
                let action = match (input.hold, input.accelerate) {
                    (true, _) => RolloutAction::HeldByCustomer,
                    (false, true) => RolloutAction::AcceleratedByCustomer,
                    (false, false) => RolloutAction::ReleasedByCustomer,
                };
                let whose = format!("customer {customer}");
                StepRecord::insert(
                    conn,
                    &id,
                    &actor,
                    action,
                    before.rollout.state,
                    before.rollout.current_wave,
                    Some(&whose),
                    at,
                )?;
                Generations::catalogue_changed(conn)?;
                read_for(conn, &customer, &id)
            })
        })
        .await?;
    crate::services::fleet::refresh(services).await;
    tracing::info!(rollout.id = %view.rollout.id, customer.id = %view.choice.as_ref().map(|c| c.customer_id.to_string()).unwrap_or_default(), user.id = %caller.user, ?input, "customer chose within a rollout");
    Ok(view)
}

fn read_for(conn: &mut DbConnection, customer: &CustomerId, id: &RolloutId) -> Result<CustomerView, ServiceError> {
    let rollout = RolloutRecord::find(conn, id)?.ok_or(ServiceError::NotFound("rollout"))?;
    let reader = PatchReader::Customer(customer.clone());
    patches::visible(conn, &reader, rollout.patch_id.as_str()).map_err(|err| match err {
        ServiceError::NotFound(_) => ServiceError::NotFound("rollout"),
        other => other,
    })?;
    let choice = CustomerChoice::of(conn, id)?
        .into_iter()
        .find(|c| c.customer_id == *customer);
    let (plan, records) = plan_of(conn, id)?;
    let through = i32::try_from(records.len()).unwrap_or(i32::MAX);
    let states: Vec<MemberState> = rollout::member_states(conn, id, &rollout.patch_id, through)?
        .into_iter()
        .filter(|m| m.customer == *customer)
        .collect();
    let at = now();
    let waves = records
        .iter()
        .zip(plan.iter())
        .map(|(record, wave)| {
            (
                record.position,
                counts_of(&states, &HashSet::new(), record.position, wave, at),
            )
        })
        .collect();
    Ok(CustomerView { rollout, choice, waves })
}

/// Judges the open wave of every running rollout and acts on the verdict; takes
/// devices enrolled since a wave opened into it. Returns how many rollouts changed.
pub async fn advance(services: &Services) -> Result<usize, ServiceError> {
    let catalogue = services.fleet.catalogue();
    let (events, joined) = services
        .db
        .run(move |conn| {
            let (mut events, mut joined) = (Vec::new(), 0);
            for rollout in RolloutRecord::running(conn)? {
                let turn = conn.write_transaction(|conn| step(conn, &catalogue, &rollout))?;
                events.extend(turn.events);
                joined += turn.joined;
            }
            Ok::<_, ServiceError>((events, joined))
        })
        .await?;
    if events.is_empty() {
        if joined > 0 {
            // New members are offered the patch on their next poll here.
            crate::services::fleet::refresh(services).await;
        }
        return Ok(joined);
    }
    services.reactions.after(services, &events).await?;
    Ok(events.len() + joined)
}

/// What one rollout's turn did: the events of its changes, and how many devices
/// joined its open wave.
#[derive(Default)]
struct Turn {
    events: Vec<Event>,
    joined: usize,
}

/// One running rollout's turn: late devices join the open wave, then the wave is
/// judged.
fn step(conn: &mut DbConnection, catalogue: &OfferCatalogue, rollout: &RolloutRecord) -> Result<Turn, ServiceError> {
    let Some(open) = rollout.current_wave else {
        return Ok(Turn::default());
    };
    let (waves, records) = plan_of(conn, &rollout.id)?;
    let Some(wave) = waves.get(position(open)) else {
        return Ok(Turn::default());
    };
    let patch = PatchRecord::find(conn, &rollout.patch_id)?.ok_or(ServiceError::NotFound("patch"))?;
    let at = now();
    if patch.state == PatchState::Yanked {
        // Nothing of a yanked patch moves on until the vendor resumes the rollout
        // with a fixed patch in its place, or cancels it.
        let why = format!(
            "the patch was yanked: {}",
            patch.yank_reason.as_deref().unwrap_or("no reason given")
        );
        return Ok(Turn {
            events: pause(conn, rollout, open, &why, at)?.into_iter().collect(),
            joined: 0,
        });
    }
    // Devices enrolled since the wave opened join it when its filters admit them.
    let opened = records.get(position(open)).and_then(|w| w.opened_at);
    let mut joined = 0;
    if let Some(opened) = opened {
        let eligible = Eligible::of(conn, catalogue, rollout, &patch)?;
        let late: Vec<DeviceId> = rollout::candidates(conn, &rollout.id, &patch.product_id, Some(opened), false)?
            .into_iter()
            .filter(|c| eligible.admits(c) && wave.admits(&c.customer_slug, &labels_of(c)))
            .map(|c| c.id)
            .collect();
        if !late.is_empty() {
            rollout::add_members(conn, &rollout.id, &late, open, at)?;
            Generations::catalogue_changed(conn)?;
        }
        joined = late.len();
    }
    let states = rollout::member_states(conn, &rollout.id, &rollout.patch_id, open)?;
    let counts = counts_of(&states, &holding(conn, &rollout.id)?, open, wave, at);
    let system = Actor::Server;
    let events = match judge(wave, &counts) {
        Verdict::Wait | Verdict::Ready => Vec::new(),
        Verdict::Pause(why) => pause(conn, rollout, open, &why, at)?.into_iter().collect(),
        Verdict::Advance => next_wave(conn, catalogue, rollout, open, &system, None, at)?
            .into_iter()
            .collect(),
    };
    Ok(Turn { events, joined })
}

/// Pauses the running `rollout` in wave `open` by itself, for `why`; the event, or
/// `None` when another change came first.
fn pause(
    conn: &mut DbConnection,
    rollout: &RolloutRecord,
    open: i32,
    why: &str,
    at: NaiveDateTime,
) -> Result<Option<Event>, ServiceError> {
    let moved = RolloutRecord::transition(
        conn,
        &rollout.id,
        &[RolloutState::Running],
        Some(open),
        RolloutState::Paused,
        Some(open),
        Some(why),
        at,
    )?;
    if moved == 0 {
        return Ok(None);
    }
    Generations::catalogue_changed(conn)?;
    let event = record(
        conn,
        &rollout.id,
        &rollout.patch_id,
        &Actor::Server,
        RolloutAction::Paused,
        RolloutState::Paused,
        Some(open),
        Some(why),
        at,
    )?;
    tracing::warn!(rollout.id = %rollout.id, wave = open, reason = %why, "rollout paused by itself");
    Ok(Some(event))
}

/// The events of `command` on `rollout`, or why it cannot be done now.
fn command_on(
    conn: &mut DbConnection,
    catalogue: &OfferCatalogue,
    rollout: &RolloutRecord,
    actor: &Actor,
    command: Command,
    reason: Option<&str>,
) -> Result<Vec<Event>, ServiceError> {
    use RolloutState::{Cancelled, Draft, Paused, Running};
    let at = now();
    let open = rollout.current_wave;
    // Where each command may start from, where it leads, and the wave open after it.
    let (from, to, action, done, wave): (&[RolloutState], _, _, _, _) = match command {
        Command::Start => (&[Draft], Running, RolloutAction::Started, "started", Some(0)),
        Command::Pause => (&[Running], Paused, RolloutAction::Paused, "paused", open),
        Command::Resume => (&[Paused], Running, RolloutAction::Resumed, "resumed", open),
        Command::Cancel => (
            &[Draft, Running, Paused],
            Cancelled,
            RolloutAction::Cancelled,
            "cancelled",
            open,
        ),
        Command::Advance => (&[Running, Paused], Running, RolloutAction::Advanced, "advanced", open),
    };
    if !from.contains(&rollout.state) {
        return Err(ServiceError::Conflict(format!(
            "a {} rollout cannot be {done}",
            rollout.state
        )));
    }
    if let (Command::Advance, Some(from)) = (command, open) {
        return next_wave(conn, catalogue, rollout, from, actor, reason, at)?
            .map(|e| vec![e])
            .ok_or_else(changed_meanwhile);
    }
    let first = match command {
        Command::Start => Some(first_wave(conn, catalogue, rollout)?),
        _ => None,
    };
    let stored_reason = match to {
        Paused => Some(reason.unwrap_or("paused by an operator")),
        Cancelled => reason,
        _ => None,
    };
    if RolloutRecord::transition(conn, &rollout.id, &[rollout.state], open, to, wave, stored_reason, at)? == 0 {
        return Err(changed_meanwhile());
    }
    if let Some((patch, waves)) = first {
        fill_wave(conn, catalogue, rollout, &patch, &waves, 0, at)?;
    }
    Ok(vec![record(
        conn,
        &rollout.id,
        &rollout.patch_id,
        actor,
        action,
        to,
        wave,
        reason,
        at,
    )?])
}

/// Puts the patch `with` in the place of `patch`, the patch of the paused `rollout`:
/// a draft (offered, once published, only as the rollout says) or a published patch,
/// of the same product, rolled out by no other rollout.
fn replace_patch(
    conn: &mut DbConnection,
    catalogue: &OfferCatalogue,
    rollout: &RolloutRecord,
    patch: &PatchRecord,
    with: &PatchId,
) -> Result<(), ServiceError> {
    if rollout.state != RolloutState::Paused {
        return Err(ServiceError::Conflict(format!(
            "a {} rollout cannot take another patch; pause it first",
            rollout.state
        )));
    }
    let replacement = PatchRecord::find(conn, with)?
        .ok_or_else(|| ServiceError::invalid("patch_id", format!("no patch `{with}`")))?;
    if replacement.id == patch.id {
        return Err(ServiceError::invalid("patch_id", "this is the rollout's patch already"));
    }
    if replacement.product_id != patch.product_id {
        return Err(ServiceError::invalid(
            "patch_id",
            "the patch in its place must be of the same product",
        ));
    }
    match replacement.state {
        PatchState::Yanked => {
            return Err(ServiceError::invalid(
                "patch_id",
                format!("patch {with} was yanked; it cannot take the place"),
            ))
        }
        PatchState::Published if !catalogue.published.contains_key(&replacement.id) => {
            return Err(ServiceError::Unavailable(
                "the offer catalogue has not loaded the patch yet".into(),
            ))
        }
        // A draft takes the place before it is published, so that once published
        // it is offered only as the rollout says.
        PatchState::Draft | PatchState::Published => {}
    }
    if let Some(other) = RolloutRecord::in_force_for(conn, &replacement.id)? {
        return Err(ServiceError::Conflict(format!(
            "patch {with} is rolled out by rollout {} already",
            other.id
        )));
    }
    if RolloutRecord::replace_patch(
        conn,
        &rollout.id,
        RolloutState::Paused,
        &patch.id,
        &replacement.id,
        now(),
    )? == 0
    {
        return Err(changed_meanwhile());
    }
    tracing::info!(rollout.id = %rollout.id, replaced = %patch.id, patch.id = %replacement.id, "rollout takes another patch");
    Ok(())
}

/// The patch and plan of a rollout about to start: its patch must be published
/// and known to the offer catalogue.
fn first_wave(
    conn: &mut DbConnection,
    catalogue: &OfferCatalogue,
    rollout: &RolloutRecord,
) -> Result<(PatchRecord, Vec<Wave>), ServiceError> {
    let patch = PatchRecord::find(conn, &rollout.patch_id)?.ok_or(ServiceError::NotFound("patch"))?;
    if patch.state != PatchState::Published {
        return Err(ServiceError::Conflict(format!(
            "the patch is {}; a rollout starts once it is published",
            patch.state
        )));
    }
    if !catalogue.published.contains_key(&patch.id) {
        return Err(ServiceError::Unavailable(
            "the offer catalogue has not loaded the patch yet".into(),
        ));
    }
    let (waves, _) = plan_of(conn, &rollout.id)?;
    Ok((patch, waves))
}

fn changed_meanwhile() -> ServiceError {
    ServiceError::Conflict("the rollout changed meanwhile; read it again".into())
}

/// Closes wave `from` and opens the next (running), or finishes the rollout after
/// its last wave. `None` when another change came first.
fn next_wave(
    conn: &mut DbConnection,
    catalogue: &OfferCatalogue,
    rollout: &RolloutRecord,
    from: i32,
    actor: &Actor,
    reason: Option<&str>,
    at: NaiveDateTime,
) -> Result<Option<Event>, ServiceError> {
    let (waves, _) = plan_of(conn, &rollout.id)?;
    let next = from + 1;
    let last = position(next) >= waves.len();
    let (state, wave, action) = if last {
        (RolloutState::Finished, Some(from), RolloutAction::Finished)
    } else {
        (RolloutState::Running, Some(next), RolloutAction::Advanced)
    };
    let moved = RolloutRecord::transition(
        conn,
        &rollout.id,
        &[RolloutState::Running, RolloutState::Paused],
        Some(from),
        state,
        wave,
        None,
        at,
    )?;
    if moved == 0 {
        return Ok(None);
    }
    WaveRecord::close(conn, &rollout.id, from, at)?;
    if !last {
        let patch = PatchRecord::find(conn, &rollout.patch_id)?.ok_or(ServiceError::NotFound("patch"))?;
        fill_wave(conn, catalogue, rollout, &patch, &waves, next, at)?;
    }
    Generations::catalogue_changed(conn)?;
    tracing::info!(rollout.id = %rollout.id, wave = ?wave, state = %state, "rollout moved on");
    Ok(Some(record(
        conn,
        &rollout.id,
        &rollout.patch_id,
        actor,
        action,
        state,
        wave,
        reason,
        at,
    )?))
}

/// Opens wave `at_wave`: decides which devices it takes in.
fn fill_wave(
    conn: &mut DbConnection,
    catalogue: &OfferCatalogue,
    rollout: &RolloutRecord,
    patch: &PatchRecord,
    waves: &[Wave],
    at_wave: i32,
    at: NaiveDateTime,
) -> Result<(), ServiceError> {
    // Earlier waves' members count towards a wave's share; so read them too.
    let mut everyone = rollout::candidates(conn, &rollout.id, &patch.product_id, None, false)?;
    let eligible = Eligible::of(conn, catalogue, rollout, patch)?;
    everyone.retain(|c| eligible.admits(c));
    let earlier = rollout::candidates(conn, &rollout.id, &patch.product_id, None, true)?;
    let labels: Vec<Labels> = everyone.iter().chain(earlier.iter()).map(labels_of).collect();
    let ids: Vec<String> = everyone
        .iter()
        .chain(earlier.iter())
        .map(|c| c.id.to_string())
        .collect();
    let pool: Vec<Applicable<'_>> = everyone
        .iter()
        .chain(earlier.iter())
        .enumerate()
        .map(|(i, c)| Applicable {
            device: &ids[i],
            customer: &c.customer_slug,
            labels: &labels[i],
            taken: i >= everyone.len(),
        })
        .collect();
    let taken: Vec<DeviceId> = open_wave(rollout.id.as_str(), waves, position(at_wave), &pool)
        .into_iter()
        .filter_map(|i| everyone.get(i).map(|c| c.id.clone()))
        .collect();
    rollout::add_members(conn, &rollout.id, &taken, at_wave, at)?;
    WaveRecord::open(conn, &rollout.id, at_wave, at)?;
    Ok(())
}

/// Whether `patch` fixes a published emergency advisory.
fn fixes_emergency(conn: &mut DbConnection, patch: &PatchRecord) -> Result<bool, ServiceError> {
    Ok(PatchRecord::fixes_emergency(conn, &patch.id)?)
}

/// Which devices a rollout may take in, rollouts aside: those `patch` applies to,
/// and in the emergency lane only those exposed to an advisory it fixes.
struct Eligible<'a> {
    catalogue: &'a OfferCatalogue,
    patch: &'a PatchRecord,
    /// In the emergency lane: the public ids of the advisories the patch fixes.
    lane: Option<Vec<String>>,
}

impl<'a> Eligible<'a> {
    fn of(
        conn: &mut DbConnection,
        catalogue: &'a OfferCatalogue,
        rollout: &RolloutRecord,
        patch: &'a PatchRecord,
    ) -> Result<Self, ServiceError> {
        let lane = if rollout.emergency_lane {
            Some(PatchRecord::fixes(conn, &patch.id)?)
        } else {
            None
        };
        Ok(Eligible { catalogue, patch, lane })
    }

    fn admits(&self, device: &rollout::Candidate) -> bool {
        applies(self.catalogue, self.patch, device)
            && self
                .lane
                .as_ref()
                .is_none_or(|fixes| exposed(self.catalogue, self.patch, fixes, device))
    }
}

/// Whether the device runs a version an advisory of `fixes` names affected.
fn exposed(catalogue: &OfferCatalogue, patch: &PatchRecord, fixes: &[String], device: &rollout::Candidate) -> bool {
    let Some(product) = catalogue.products.get(&patch.product_id) else {
        return false;
    };
    let Some(version) = device.version.as_deref().and_then(|v| product.scheme.parse(v).ok()) else {
        return false;
    };
    product
        .advisories
        .iter()
        .filter(|rule| fixes.contains(&rule.public_id) && rule.concerns_slug(&device.customer_slug))
        .any(|rule| rule.affected.matches(&version).is_some())
}

/// Whether `patch` is what the device would be offered, rollouts aside.
fn applies(catalogue: &OfferCatalogue, patch: &PatchRecord, device: &rollout::Candidate) -> bool {
    let Some(product) = catalogue.products.get(&patch.product_id) else {
        return false;
    };
    device
        .version
        .as_deref()
        .and_then(|v| product.scheme.parse(v).ok())
        .is_some_and(|v| product.offers(&patch.id, &v, device.platform.as_deref()))
}

fn labels_of(device: &rollout::Candidate) -> Labels {
    Labels::try_from(device.labels.clone()).unwrap_or_default()
}

/// Counts where the members of wave `wave` stand at `at`; the devices of customers
/// in `held` apart.
fn counts_of(
    states: &[MemberState],
    held: &HashSet<CustomerId>,
    wave: i32,
    spec: &Wave,
    at: NaiveDateTime,
) -> WaveCounts {
    let timeout = TimeDelta::from_std(spec.install_timeout).unwrap_or(TimeDelta::MAX);
    let mut counts = WaveCounts::default();
    for member in states.iter().filter(|m| m.wave == wave) {
        if held.contains(&member.customer) {
            counts.held += 1;
            continue;
        }
        counts.members += 1;
        let overdue = member.first_offered_at.is_some_and(|offered| at - offered > timeout);
        match member.report.map(|(state, _)| state) {
            Some(ReportState::Installed) => counts.installed += 1,
            Some(ReportState::Failed | ReportState::RolledBack) => counts.failed += 1,
            Some(_) if overdue => counts.timed_out += 1,
            Some(_) => counts.in_progress += 1,
            None if overdue => counts.timed_out += 1,
            None if member.first_offered_at.is_some() => counts.offered += 1,
            None => counts.waiting += 1,
        }
    }
    counts
}

/// Logs a change of `rollout` and keeps it in its history; the event.
#[allow(clippy::too_many_arguments)]
fn record(
    conn: &mut DbConnection,
    rollout: &RolloutId,
    patch: &PatchId,
    actor: &Actor,
    action: RolloutAction,
    state: RolloutState,
    wave: Option<i32>,
    reason: Option<&str>,
    at: NaiveDateTime,
) -> Result<Event, ServiceError> {
    StepRecord::insert(conn, rollout, &actor.as_text(), action, state, wave, reason, at)?;
    let event = Event::RolloutChanged {
        rollout: rollout.clone(),
        patch: patch.clone(),
        action,
        state,
        wave: wave.and_then(|w| u32::try_from(w).ok()),
        reason: reason.map(str::to_owned),
    };
    log::append(conn, &event, actor)?;
    let announced = match action {
        RolloutAction::Paused => Some(EventType::RolloutPaused),
        RolloutAction::Advanced => Some(EventType::RolloutAdvanced),
        RolloutAction::Finished => Some(EventType::RolloutFinished),
        _ => None,
    };
    if let Some(kind) = announced {
        let data = serde_json::json!({
            "rollout": {
                "id": rollout,
                "patch_id": patch,
                "state": state,
                "wave": wave,
                "reason": reason,
            },
        });
        for customer in rollout::member_customers(conn, rollout)? {
            webhooks::emit(conn, &customer, kind, data.clone(), None)?;
        }
    }
    Ok(event)
}

/// The rollout with its waves (and their counts) and history.
fn read(conn: &mut DbConnection, id: &RolloutId) -> Result<RolloutView, ServiceError> {
    let rollout = RolloutRecord::find(conn, id)?.ok_or(ServiceError::NotFound("rollout"))?;
    let (plan, records) = plan_of(conn, id)?;
    let through = i32::try_from(records.len()).unwrap_or(i32::MAX);
    let states = rollout::member_states(conn, id, &rollout.patch_id, through)?;
    let held = holding(conn, id)?;
    let at = now();
    let waves = records
        .into_iter()
        .zip(plan.iter())
        .map(|(record, wave)| {
            Ok(WaveView {
                counts: counts_of(&states, &held, record.position, wave, at),
                position: record.position,
                spec: serde_json::from_str(&record.spec).map_err(|e| ServiceError::internal("a stored wave", e))?,
                opened_at: record.opened_at,
                closed_at: record.closed_at,
            })
        })
        .collect::<Result<Vec<_>, ServiceError>>()?;
    let history = StepRecord::of(conn, id)?;
    Ok(RolloutView {
        rollout,
        waves,
        history,
    })
}

/// The customers that hold their devices back in `rollout`.
fn holding(conn: &mut DbConnection, rollout: &RolloutId) -> Result<HashSet<CustomerId>, ServiceError> {
    Ok(CustomerChoice::of(conn, rollout)?
        .into_iter()
        .filter(|c| c.hold)
        .map(|c| c.customer_id)
        .collect())
}

/// The rollout's waves, checked, with their rows.
fn plan_of(conn: &mut DbConnection, id: &RolloutId) -> Result<(Vec<Wave>, Vec<WaveRecord>), ServiceError> {
    let records = WaveRecord::of(conn, id)?;
    let inputs = records
        .iter()
        .map(|r| serde_json::from_str::<WaveInput>(&r.spec).map_err(|e| ServiceError::internal("a stored wave", e)))
        .collect::<Result<Vec<_>, _>>()?;
    let waves = parse_plan(&inputs)
        .map_err(|(field, message)| ServiceError::internal("a stored wave", format!("{field}: {message}")))?;
    Ok((waves, records))
}

/// Named customers must exist and named devices be device ids.
fn check_names(conn: &mut DbConnection, waves: &[Wave]) -> Result<(), ServiceError> {
    let mut known: HashSet<String> = HashSet::new();
    for (at, wave) in waves.iter().enumerate() {
        for slug in &wave.customers {
            if !known.contains(slug) {
                if Customer::find_by_slug(conn, slug)?.is_none() {
                    return Err(ServiceError::invalid(
                        format!("waves[{at}].customers"),
                        format!("no customer `{slug}`"),
                    ));
                }
                known.insert(slug.clone());
            }
        }
        if let Some(bad) = wave.devices.iter().find(|d| d.parse::<DeviceId>().is_err()) {
            return Err(ServiceError::invalid(
                format!("waves[{at}].devices"),
                format!("`{bad}` is not a device id"),
            ));
        }
    }
    Ok(())
}

fn find_patch(conn: &mut DbConnection, id: &str) -> Result<PatchRecord, ServiceError> {
    let id: PatchId = id.parse().map_err(|_| ServiceError::NotFound("patch"))?;
    PatchRecord::find(conn, &id)?.ok_or(ServiceError::NotFound("patch"))
}

fn parse_id(id: &str) -> Result<RolloutId, ServiceError> {
    id.parse().map_err(|_| ServiceError::NotFound("rollout"))
}

fn position(wave: i32) -> usize {
    usize::try_from(wave).unwrap_or(usize::MAX)
}
