//! What polls carry of the log, kept in memory: the newest head, the inclusion
//! proof of every offered patch in it and of each rollout's latest change, consistency proofs from recent heads, and
//! the list of yanked patches the head commits to — rebuilt when a new head appears.
//! A device that holds an older head than the recent ones is answered without a
//! proof (it fetches one), and the proof from its size is made in the background
//! and kept with the view, so the devices that hold the same head get it ready:
//! while the sequencer signs heads twice a second, a fleet polling every half
//! minute holds some sixty different ones. Nothing a poll does waits for that.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::heads::{revocations, signed_head};
use super::proofs::{consistency_in, proof_error, resolve};
use crate::db::models::log::{self as rows};
use crate::domain::log::LogKind;
use crate::domain::log::{hex_proof, OfferLog};
use crate::domain::merkle::inclusion_plan;
use crate::domain::RolloutState;
use crate::ids::{PatchId, RolloutId};
use crate::services::{ServiceError, Services};
use serde_json::value::RawValue;

/// How many earlier heads polls carry a ready consistency proof from.
const RECENT_HEADS: i64 = 32;

/// How many more consistency proofs, from the sizes devices hold, a view makes
/// and keeps (each a few hundred bytes): a device names its size, so this bounds
/// what devices can make a view hold.
const MORE_PROOFS: usize = 1024;

/// What polls carry of the log, rendered once per head.
#[derive(Debug, Default)]
pub struct LogView {
    pub sequence: u64,
    pub tree_size: u64,
    /// The head, as JSON.
    pub head: Option<Arc<RawValue>>,
    /// The witnesses' cosignature lines of the head, as a JSON list (none: absent).
    pub cosignatures: Option<Arc<RawValue>>,
    /// How many cosignatures that is.
    pub cosigned: usize,
    /// Each published patch's entry and its inclusion in the head, as JSON.
    pub offers: HashMap<PatchId, Arc<RawValue>>,
    /// Each rollout's latest change in the head: the state it logged, the entry and
    /// its inclusion.
    pub rollouts: HashMap<RolloutId, (RolloutState, OfferLog)>,
    /// Consistency proofs to the head from the sizes of recent heads, as JSON.
    pub consistency: HashMap<u64, Arc<RawValue>>,
    /// Proofs from other sizes devices hold, made in the background (`None`: being
    /// made).
    pub more: std::sync::Mutex<HashMap<u64, Option<Arc<RawValue>>>>,
    /// The patches yanked within the head's tree, which its signature commits to, as
    /// JSON: answers that offer a patch carry it.
    pub revoked: Option<Arc<RawValue>>,
}

/// This instance's [`LogView`].
#[derive(Default)]
pub struct LogCache {
    view: RwLock<Arc<LogView>>,
    following: tokio::sync::Mutex<()>,
}

impl LogCache {
    pub fn view(&self) -> Arc<LogView> {
        self.view.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Arc<RawValue>, ServiceError> {
    serde_json::value::to_raw_value(value)
        .map(Arc::from)
        .map_err(|e| ServiceError::internal("rendering the log view", e))
}

/// The cosignature lines as polls carry them: a JSON list, or nothing when none.
fn cosignature_list(records: &[rows::CosignatureRecord]) -> Result<Option<Arc<RawValue>>, ServiceError> {
    if records.is_empty() {
        return Ok(None);
    }
    let lines: Vec<&str> = records.iter().map(|r| r.line.trim_end()).collect();
    to_json(&lines).map(Some)
}

/// Brings this instance's view to the newest head, when it moved or gained
/// cosignatures. Returns whether it did.
pub async fn follow(services: &Services) -> Result<bool, ServiceError> {
    let _one_at_a_time = services.log.following.lock().await;
    let current = services.log.view();
    let (known, cosigned) = (current.sequence, current.cosigned);
    let view = services
        .db
        .run(move |conn| {
            let Some((latest, cosignatures)) = rows::latest_head_cosigned(conn)? else {
                return Ok::<_, ServiceError>(None);
            };
            if latest.sequence as u64 == known {
                if cosignatures.len() == cosigned {
                    return Ok(None);
                }
                // Only the cosignatures changed: the rest of the view stays.
                return Ok(Some(LogView {
                    sequence: current.sequence,
                    tree_size: current.tree_size,
                    head: current.head.clone(),
                    cosignatures: cosignature_list(&cosignatures)?,
                    cosigned: cosignatures.len(),
                    offers: current.offers.clone(),
                    rollouts: current.rollouts.clone(),
                    consistency: current.consistency.clone(),
                    more: std::sync::Mutex::new(current.more.lock().unwrap_or_else(|e| e.into_inner()).clone()),
                    revoked: current.revoked.clone(),
                }));
            }
            let size = latest.tree_size as u64;
            let mut offers = HashMap::new();
            for entry in rows::of_kind(conn, LogKind::PatchPublished.as_str(), size)? {
                let Some(id) = entry
                    .subject
                    .strip_prefix("patch/")
                    .and_then(|p| p.parse::<PatchId>().ok())
                else {
                    continue;
                };
                offers.insert(id, to_json(&included(conn, entry, size)?)?);
            }
            // Entries come in log order: the last one of a rollout is its latest.
            let mut changes = HashMap::new();
            for entry in rows::of_kind(conn, LogKind::RolloutChanged.as_str(), size)? {
                if let Some(id) = entry
                    .subject
                    .strip_prefix("rollout/")
                    .and_then(|r| r.parse::<RolloutId>().ok())
                {
                    changes.insert(id, entry);
                }
            }
            let mut rollouts = HashMap::with_capacity(changes.len());
            for (id, entry) in changes {
                let state = serde_json::from_str::<serde_json::Value>(&entry.leaf)
                    .ok()
                    .and_then(|leaf| leaf.get("state")?.as_str()?.parse::<RolloutState>().ok());
                let Some(state) = state else {
                    continue;
                };
                rollouts.insert(id, (state, included(conn, entry, size)?));
            }
            let mut consistency = HashMap::new();
            for earlier in rows::heads(conn, RECENT_HEADS)? {
                let from = earlier.tree_size as u64;
                if from == 0 || from > size || consistency.contains_key(&from) {
                    continue;
                }
                consistency.insert(from, to_json(&consistency_in(conn, from, size)?)?);
            }
            Ok(Some(LogView {
                sequence: latest.sequence as u64,
                tree_size: size,
                head: Some(to_json(&signed_head(&latest)?)?),
                cosignatures: cosignature_list(&cosignatures)?,
                cosigned: cosignatures.len(),
                offers,
                rollouts,
                consistency,
                more: std::sync::Mutex::default(),
                revoked: Some(to_json(&revocations(conn, size)?)?),
            }))
        })
        .await?;
    let Some(view) = view else {
        return Ok(false);
    };
    *services.log.view.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(view);
    Ok(true)
}

/// `entry` with its inclusion proof in the tree of `size` entries.
fn included(
    conn: &mut crate::db::DbConnection,
    entry: rows::LogEntryRecord,
    size: u64,
) -> Result<OfferLog, ServiceError> {
    let index = entry.idx as u64;
    let plan = inclusion_plan(index, size).map_err(proof_error)?;
    let proof = hex_proof(&resolve(conn, &plan)?);
    Ok(OfferLog {
        index,
        leaf: entry.leaf,
        tree_size: size,
        proof,
    })
}

impl LogView {
    /// The consistency proof from `size` to this view's head, when it is at hand.
    /// When it is not, it is made in the background (once per size, for at most
    /// [`MORE_PROOFS`] sizes) for the next poll from that size; this returns at once.
    pub fn consistency_from(self: &Arc<Self>, db: &crate::db::Db, size: u64) -> Option<Arc<RawValue>> {
        if size == 0 || size >= self.tree_size {
            return None;
        }
        if let Some(proof) = self.consistency.get(&size) {
            return Some(proof.clone());
        }
        let mut more = self.more.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(made) = more.get(&size) {
            return made.clone();
        }
        if more.len() >= MORE_PROOFS {
            return None;
        }
        more.insert(size, None);
        drop(more);
        let (view, db, to) = (self.clone(), db.clone(), self.tree_size);
        tokio::spawn(async move {
            let made = db
                .run(move |conn| consistency_in(conn, size, to).and_then(|proof| to_json(&proof)))
                .await;
            let mut more = view.more.lock().unwrap_or_else(|e| e.into_inner());
            match made {
                Ok(proof) => {
                    more.insert(size, Some(proof));
                }
                // Tried again by the next poll from that size.
                Err(err) => {
                    more.remove(&size);
                    tracing::debug!(size, error = %err, "a consistency proof for polls was not made");
                }
            }
        });
        None
    }
}
