//! The transparency log: every event that changes what customers or devices may
//! trust is appended, in the transaction of the event itself, to a Merkle tree
//! (RFC 9162); tree heads are signed with the vendor key and kept as a history;
//! anyone reads entries, heads and proofs. An entry about one customer's fleet is
//! sealed: the public leaf is a salted commitment, the opening stays with the
//! entry for that customer's evidence bundles and the operator's audit page.
//!
//! Polls are answered from memory, so this instance keeps the newest head, the
//! inclusion proof of every offered patch in it, and consistency proofs from the
//! heads before it ([`LogView`]), refreshed when a new head appears.

mod backfill;
mod heads;
mod proofs;
pub mod records;
mod timeline;
mod view;

pub use backfill::{backfill, index_of_subject};
pub use heads::{head, history, revocations, sign_head, sign_if_due, sign_now, signed_head};
pub use proofs::{consistency, consistency_in, entries, inclusion, inclusion_in};
pub use timeline::{timeline, AuditEntry, Timeline, TimelineQuery};
pub use view::{follow, LogCache, LogView};

use crate::db::models::log::{self as rows, LogEntryRecord};
use crate::db::models::{now, utc};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::log::{commitment, sealed_text};
use crate::domain::merkle::{leaf_hash, Hash};
use crate::services::ServiceError;

/// The most entries one read returns.
pub const MAX_ENTRIES: u64 = 1000;

/// Appends `event`, caused by `actor`, inside the caller's write transaction;
/// returns its index.
pub fn append(conn: &mut DbConnection, event: &Event, actor: &Actor) -> Result<u64, ServiceError> {
    append_all(conn, &[(event, actor)])
}

/// Appends `events` in order inside the caller's write transaction (reading the
/// tree's right edge once); returns the index of the first.
pub fn append_all(conn: &mut DbConnection, events: &[(&Event, &Actor)]) -> Result<u64, ServiceError> {
    let at = now();
    let (mut entries, leaves): (Vec<LogEntryRecord>, Vec<Hash>) = events
        .iter()
        .map(|(event, actor)| entry_of(event, actor, at))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .unzip();
    Ok(rows::append(conn, &mut entries, &leaves)?)
}

/// How a sealed entry's opening is stored: the salt and the entry text the public
/// leaf commits to.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Opening {
    pub salt: String,
    pub entry: String,
}

impl Opening {
    /// The opening of `entry`, when it is sealed.
    pub fn of(entry: &LogEntryRecord) -> Option<Opening> {
        serde_json::from_str(entry.opening.as_deref()?).ok()
    }
}

/// The stored entry of `event` at `at`, with its leaf hash: its public text, or
/// for a customer's entry a salted commitment to it, opened beside it.
fn entry_of(event: &Event, actor: &Actor, at: chrono::NaiveDateTime) -> Result<(LogEntryRecord, Hash), ServiceError> {
    let text = event.entry_text(utc(at));
    let kind = event.kind();
    let (leaf, opening) = if kind.is_customer_scoped() {
        let salt = hex::encode(crate::random::bytes::<32>());
        let sealed = sealed_text(&commitment(&salt, &text));
        let opening = Opening { salt, entry: text };
        let opening = serde_json::to_string(&opening).map_err(|e| ServiceError::internal("sealing an entry", e))?;
        (sealed, Some(opening))
    } else {
        (text, None)
    };
    let hash = leaf_hash(leaf.as_bytes());
    let row = LogEntryRecord {
        idx: 0,
        kind: kind.as_str().to_owned(),
        subject: event.subject().to_string(),
        actor: actor.as_text(),
        customer_id: event.customer().map(|c| c.as_str().to_owned()),
        leaf,
        leaf_hash: hash.to_vec(),
        opening,
        created_at: at,
    };
    Ok((row, hash))
}
