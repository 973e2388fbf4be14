//! What polls carry of the log, kept in memory: the newest head, the inclusion
//! proof of every offered patch in it, consistency proofs from recent heads, and
//! the list of yanked patches the head commits to — rebuilt when a new head appears.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::heads::{revocations, signed_head};
use super::proofs::{consistency_in, proof_error, resolve};
use crate::db::models::log::{self as rows};
use crate::domain::log::LogKind;
use crate::domain::log::{hex_proof, OfferLog};
use crate::domain::merkle::inclusion_plan;
use crate::ids::PatchId;
use crate::services::{ServiceError, Services};
use serde_json::value::RawValue;

/// How many earlier heads polls carry a ready consistency proof from.
const RECENT_HEADS: i64 = 32;

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
    /// Consistency proofs to the head from the sizes of recent heads, as JSON.
    pub consistency: HashMap<u64, Arc<RawValue>>,
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
                    consistency: current.consistency.clone(),
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
                let index = entry.idx as u64;
                let plan = inclusion_plan(index, size).map_err(proof_error)?;
                let proof = hex_proof(&resolve(conn, &plan)?);
                let log = OfferLog {
                    index,
                    leaf: entry.leaf,
                    tree_size: size,
                    proof,
                };
                offers.insert(id, to_json(&log)?);
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
                consistency,
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
