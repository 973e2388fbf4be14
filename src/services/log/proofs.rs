//! Reading the log: entries, and inclusion and consistency proofs, each resolved
//! from the stored subtrees in one query, for trees a signed head covers.

use super::MAX_ENTRIES;
use crate::db::models::log::{self as rows};
use crate::db::DbConnection;
use crate::domain::log::{hex_proof, ConsistencyProof, EntriesPage, InclusionProof, LogEntry};
use crate::domain::merkle::{consistency_plan, inclusion_plan, Hash, ProofError, ProofPlan};
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
