//! Reading the log: entries, and inclusion and consistency proofs, each resolved
//! from the stored subtrees in one query, for trees a signed head covers.

use super::heads::{cosigned_note, revocations};
use super::MAX_ENTRIES;
use crate::db::models::log::{self as rows};
use crate::db::DbConnection;
use crate::domain::log::{hex_proof, patch_subject, ConsistencyProof, EntriesPage, InclusionProof, LogEntry, LogKind};
use crate::domain::merkle::{consistency_plan, inclusion_plan, Hash, ProofError, ProofPlan};
use crate::domain::proof::{ProofExtra, TlogProof};
use crate::ids::PatchId;
use crate::services::{ServiceError, Services};

pub(super) fn proof_error(err: ProofError) -> ServiceError {
    match err {
        ProofError::MissingNode(_) => ServiceError::internal("reading the log", err),
        other => ServiceError::invalid("tree_size", other.to_string()),
    }
}

/// The hashes of `plan`, read in one query.
pub(super) fn resolve(conn: &mut DbConnection, plan: &ProofPlan) -> Result<Vec<Hash>, ServiceError> {
    let found = rows::nodes(conn, &plan.nodes())?;
    plan.resolve(|n| found.get(&n).copied()).map_err(proof_error)
}

/// Entries `start..end` (at most [`MAX_ENTRIES`]).
pub async fn entries(services: &Services, start: u64, end: Option<u64>) -> Result<EntriesPage, ServiceError> {
    super::integrate_pending(services).await?;
    services
        .db
        .run(move |conn| {
            let size = rows::size(conn)?;
            let end = end.unwrap_or(size).min(size).min(start.saturating_add(MAX_ENTRIES));
            if start > size {
                return Err(ServiceError::invalid(
                    "start",
                    format!("the log holds {size} entries; start {start} is past its end"),
                ));
            }
            let entries = rows::entries(conn, start, end.max(start))?
                .into_iter()
                .map(|e| LogEntry {
                    index: e.idx as u64,
                    leaf_hash: hex::encode(&e.leaf_hash),
                    leaf: e.leaf,
                })
                .collect();
            Ok(EntriesPage {
                tree_size: size,
                entries,
            })
        })
        .await
}

/// Checks that a tree of `size` entries has been signed: proofs are given only
/// for heads that exist, so they cannot reveal entries no head covers yet.
fn check_size(conn: &mut DbConnection, field: &str, size: u64) -> Result<(), ServiceError> {
    let signed = rows::latest_head(conn)?.map_or(0, |h| h.tree_size as u64);
    if size > signed {
        return Err(ServiceError::invalid(
            field,
            format!("the newest signed head covers {signed} entries; {size} is past it"),
        ));
    }
    Ok(())
}

/// The inclusion proof of entry `index` in the tree of `size` entries.
pub fn inclusion_in(conn: &mut DbConnection, index: u64, size: u64) -> Result<InclusionProof, ServiceError> {
    let plan = inclusion_plan(index, size).map_err(|e| ServiceError::invalid("index", e.to_string()))?;
    let entry = rows::entry(conn, index)?.ok_or(ServiceError::NotFound("log entry"))?;
    let proof = resolve(conn, &plan)?;
    Ok(InclusionProof {
        index,
        tree_size: size,
        leaf_hash: hex::encode(&entry.leaf_hash),
        proof: hex_proof(&proof),
    })
}

/// `GET /api/v1/log/proof/inclusion`.
pub async fn inclusion(services: &Services, index: u64, size: u64) -> Result<InclusionProof, ServiceError> {
    services
        .db
        .run(move |conn| {
            check_size(conn, "tree_size", size)?;
            inclusion_in(conn, index, size)
        })
        .await
}

/// The consistency proof between trees of `from` and `to` entries.
pub fn consistency_in(conn: &mut DbConnection, from: u64, to: u64) -> Result<ConsistencyProof, ServiceError> {
    let plan = consistency_plan(from, to).map_err(|e| ServiceError::invalid("from", e.to_string()))?;
    Ok(ConsistencyProof {
        from,
        to,
        proof: hex_proof(&resolve(conn, &plan)?),
    })
}

/// `GET /api/v1/log/proof/consistency`.
pub async fn consistency(services: &Services, from: u64, to: u64) -> Result<ConsistencyProof, ServiceError> {
    services
        .db
        .run(move |conn| {
            check_size(conn, "to", to)?;
            consistency_in(conn, from, to)
        })
        .await
}

/// How many of the newest heads a patch's proof looks through for one that the
/// witnesses' quorum cosigned.
const PROOF_HEADS: i64 = 16;

/// The C2SP `tlog-proof` of patch `patch`'s publication: its entry's inclusion in
/// the newest head that covers it and carries the quorum of `witness_policy` (else
/// the newest head that covers it, signed now when none does yet), that head's
/// cosigned checkpoint, and as extra data the entry, the head's minisign signature
/// and the patches yanked within it ([`ProofExtra`]).
pub async fn patch_proof(services: &Services, patch: &PatchId) -> Result<String, ServiceError> {
    let subject = patch_subject(patch.as_str());
    for _ in 0..2 {
        let subject = subject.clone();
        let policy = services.config.witness_policy.clone();
        let proof = services
            .db
            .run(move |conn| {
                let entry = rows::about(conn, &[subject], Some(LogKind::PatchPublished.as_str()))?
                    .into_iter()
                    .next()
                    .ok_or(ServiceError::NotFound("the patch's publication in the log"))?;
                let index = entry.idx as u64;
                let mut chosen = None;
                for head in rows::heads(conn, PROOF_HEADS)? {
                    if head.tree_size as u64 <= index {
                        break;
                    }
                    let Some(note) = cosigned_note(&head, &rows::cosignatures(conn, head.sequence)?)? else {
                        continue;
                    };
                    let met = policy.as_ref().is_none_or(|p| p.met_in(&note));
                    if met || chosen.is_none() {
                        chosen = Some((head, note));
                    }
                    if met {
                        break;
                    }
                }
                let Some((head, checkpoint)) = chosen else {
                    return Ok::<_, ServiceError>(None);
                };
                let size = head.tree_size as u64;
                let extra = ProofExtra::new(entry.leaf, &head.signature, revocations(conn, size)?);
                let extra =
                    serde_json::to_vec(&extra).map_err(|e| ServiceError::internal("writing a patch's proof", e))?;
                let plan = inclusion_plan(index, size).map_err(proof_error)?;
                Ok(Some(TlogProof {
                    extra: Some(extra),
                    index,
                    proof: resolve(conn, &plan)?,
                    checkpoint,
                }))
            })
            .await?;
        match proof {
            Some(proof) => return Ok(proof.to_text()),
            None => {
                super::sign_now(services).await?;
            }
        }
    }
    Err(ServiceError::Unavailable(
        "no signed tree head covers the patch yet".into(),
    ))
}
