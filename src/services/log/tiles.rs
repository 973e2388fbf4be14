//! The log as C2SP `tlog-tiles` (see [`crate::domain::tiles`]), read from the
//! stored leaves and subtrees: a tile is given once the newest signed head covers
//! all of it, so tiles, like proofs, reveal nothing no head vouches for, and a
//! full tile is the same bytes forever.

use crate::db::models::log::{self as rows};
use crate::domain::tiles::{entry_bundle, TilePath, TILE_WIDTH};
use crate::services::{ServiceError, Services};

/// The bytes of the tile or entry bundle `path`.
pub async fn tile(services: &Services, path: TilePath) -> Result<Vec<u8>, ServiceError> {
    services
        .db
        .run(move |conn| {
            let signed = rows::latest_head(conn)?.map_or(0, |h| h.tree_size as u64);
            let level = path.tree_level();
            let start = path.index.saturating_mul(TILE_WIDTH);
            let end = start.saturating_add(path.count());
            // Complete subtrees at that level within the signed tree.
            if end > signed >> level {
                return Err(ServiceError::NotFound(
                    "tile (the newest signed head does not cover it)",
                ));
            }
            let parts = match path.level {
                None => {
                    let entries = rows::entries(conn, start, end)?;
                    let leaves: Vec<&[u8]> = entries.iter().map(|e| e.leaf.as_bytes()).collect();
                    return entry_bundle(leaves).map_err(|e| ServiceError::internal("an entry bundle", e));
                }
                Some(0) => rows::leaf_hashes(conn, start, end)?,
                Some(_) => rows::level_hashes(conn, level, start, end)?,
            };
            if parts.len() as u64 != path.count() {
                return Err(ServiceError::internal(
                    "reading a tile",
                    format!("{path} has {} of its {} hashes", parts.len(), path.count()),
                ));
            }
            Ok(parts.concat())
        })
        .await
}
