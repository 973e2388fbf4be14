//! Rollout bodies as the API sends them.

use serde::{Deserialize, Serialize};

use crate::db::models::utc;
use crate::domain::rollout::{WaveCounts, WaveInput};
use crate::domain::{RolloutAction, RolloutState};
use crate::services::rollouts::{CustomerView, RolloutView};

pub use crate::services::rollouts::{CustomerInput, RolloutPlan};

type Timestamp = chrono::DateTime<chrono::Utc>;

#[derive(Debug, Serialize, Deserialize)]
pub struct RolloutResponse {
    pub id: String,
    pub patch_id: String,
    pub state: RolloutState,
    /// The open wave (from 0), once started.
    pub current_wave: Option<i32>,
    /// Why it is paused.
    pub reason: Option<String>,
    pub waves: Vec<WaveResponse>,
    pub history: Vec<StepResponse>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WaveResponse {
    pub position: i32,
    /// The wave as planned.
    pub plan: WaveInput,
    pub opened_at: Option<Timestamp>,
    pub closed_at: Option<Timestamp>,
    /// Where the wave's devices stand with the patch.
    pub counts: WaveCounts,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct StepResponse {
    pub at: Timestamp,
    /// `user:<id>`, or `server` for what the rollout did by itself.
    pub actor: String,
    pub action: RolloutAction,
    pub state: RolloutState,
    pub wave: Option<i32>,
    pub reason: Option<String>,
}

impl RolloutResponse {
    pub fn of(view: RolloutView) -> Self {
        let RolloutView {
            rollout,
            waves,
            history,
        } = view;
        RolloutResponse {
            id: rollout.id.to_string(),
            patch_id: rollout.patch_id.to_string(),
            state: rollout.state,
            current_wave: rollout.current_wave,
            reason: rollout.reason,
            waves: waves
                .into_iter()
                .map(|w| WaveResponse {
                    position: w.position,
                    plan: w.spec,
                    opened_at: w.opened_at.map(utc),
                    closed_at: w.closed_at.map(utc),
                    counts: w.counts,
                })
                .collect(),
            history: history
                .into_iter()
                .map(|s| StepResponse {
                    at: utc(s.at),
                    actor: s.actor,
                    action: s.action,
                    state: s.state,
                    wave: s.wave,
                    reason: s.reason,
                })
                .collect(),
            created_at: utc(rollout.created_at),
            updated_at: utc(rollout.updated_at),
        }
    }
}

/// The body of `POST /api/v1/rollouts/{id}/start|pause|resume|advance|cancel`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutCommand {
    #[serde(default)]
    pub reason: Option<String>,
    /// With `resume`: a published patch of the same product that takes the place
    /// of the rollout's (yanked) patch; the waves and their members stay.
    #[serde(default)]
    pub patch_id: Option<String>,
}

/// A rollout as a customer admin sees it: its state, the customer's own choice,
/// and where the customer's devices stand in each wave.
#[derive(Debug, Serialize, Deserialize)]
pub struct CustomerRolloutResponse {
    pub id: String,
    pub patch_id: String,
    pub state: RolloutState,
    pub current_wave: Option<i32>,
    pub hold: bool,
    pub accelerate: bool,
    pub waves: Vec<CustomerWave>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CustomerWave {
    pub position: i32,
    pub counts: WaveCounts,
}

impl CustomerRolloutResponse {
    pub fn of(view: CustomerView) -> Self {
        let CustomerView { rollout, choice, waves } = view;
        CustomerRolloutResponse {
            id: rollout.id.to_string(),
            patch_id: rollout.patch_id.to_string(),
            state: rollout.state,
            current_wave: rollout.current_wave,
            hold: choice.as_ref().is_some_and(|c| c.hold),
            accelerate: choice.as_ref().is_some_and(|c| c.accelerate),
            waves: waves
                .into_iter()
                .map(|(position, counts)| CustomerWave { position, counts })
                .collect(),
        }
    }
}
