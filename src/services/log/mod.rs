//! The transparency log: every event that changes what customers or devices may
//! trust is appended, in the transaction of the event itself, as a pending entry;
//! the sequencer integrates pending entries into a Merkle tree (RFC 9162) in
//! batches, giving them their indexes, and a head that covers them is signed
//! within a second; tree heads are signed with the vendor key and kept as a history;
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
mod tiles;
mod timeline;
mod view;

pub use backfill::backfill;
pub use heads::{checkpoint, cosigned_note, head, history, revocations, sign_head, signed_head};
pub use proofs::{consistency, consistency_in, entries, inclusion, inclusion_in, patch_proof};
pub use tiles::tile;
pub use timeline::{timeline, AuditEntry, Timeline, TimelineQuery};
pub use view::{follow, LogCache, LogView};

use chrono::TimeDelta;

use crate::db::models::log::{self as rows, LogEntryRecord, PendingEntry};
use crate::db::models::{now, utc};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::log::{commitment, sealed_text, SignedHead};
use crate::domain::merkle::leaf_hash;
use crate::domain::note::{NoteSigner, TYPE_ED25519};
use crate::services::{ServiceError, Services};

/// The most entries one read returns.
pub const MAX_ENTRIES: u64 = 1000;

/// How many pending entries one integration moves into the tree.
const INTEGRATION_BATCH: i64 = 5000;

/// Appends `event`, caused by `actor`, inside the caller's write transaction: the
/// entry commits with the event, and the sequencer gives it its index.
pub fn append(conn: &mut DbConnection, event: &Event, actor: &Actor) -> Result<(), ServiceError> {
    append_all(conn, &[(event, actor)])
}

/// Appends `events` in order inside the caller's write transaction, as one
/// multi-row insert into the queue of pending entries.
pub fn append_all(conn: &mut DbConnection, events: &[(&Event, &Actor)]) -> Result<(), ServiceError> {
    enqueue(conn, &prepare(events)?)
}

/// The pending entries of `events`, in order, made without a connection: a bulk
/// writer seals a million enrolments' entries while its rows go in, then queues
/// them with [`enqueue`] in the same transaction.
pub fn prepare(events: &[(&Event, &Actor)]) -> Result<Vec<PendingEntry>, ServiceError> {
    let at = now();
    events.iter().map(|(event, actor)| entry_of(event, actor, at)).collect()
}

/// Queues entries [`prepare`] made, inside the caller's write transaction.
pub fn enqueue(conn: &mut DbConnection, entries: &[PendingEntry]) -> Result<(), ServiceError> {
    Ok(rows::enqueue(conn, entries)?)
}

/// Integrates every pending entry into the tree, a batch per write transaction
/// (inside the caller's, when it holds one); returns how many.
pub fn integrate(conn: &mut DbConnection) -> Result<usize, ServiceError> {
    let mut total = 0;
    loop {
        let count = conn.write_transaction(|conn| rows::integrate(conn, INTEGRATION_BATCH))?;
        total += count;
        if count < INTEGRATION_BATCH as usize {
            return Ok(total);
        }
    }
}

/// Integrates what is pending, when anything is: what readers of the log call
/// first, so that they see every entry committed before them.
pub async fn integrate_pending(services: &Services) -> Result<usize, ServiceError> {
    services
        .db
        .run(|conn| {
            if rows::any_pending(conn)? {
                integrate(conn)
            } else {
                Ok(0)
            }
        })
        .await
}

/// The index of the newest entry that records `event`.
pub async fn index_of(services: &Services, event: &Event) -> Result<u64, ServiceError> {
    let (subject, kind) = (event.subject().to_string(), event.kind().as_str());
    services
        .db
        .run(move |conn| {
            rows::about(conn, &[subject], Some(kind))?
                .last()
                .map(|e| e.idx as u64)
                .ok_or(ServiceError::NotFound("the event's log entry"))
        })
        .await
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
fn entry_of(event: &Event, actor: &Actor, at: chrono::NaiveDateTime) -> Result<PendingEntry, ServiceError> {
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
    Ok(PendingEntry {
        kind: kind.as_str().to_owned(),
        subject: event.subject().to_string(),
        actor: actor.as_text(),
        customer_id: event.customer().map(|c| c.as_str().to_owned()),
        leaf,
        leaf_hash: hash.to_vec(),
        opening,
        created_at: at,
    })
}

/// The signing key as the log's C2SP note key, named by the log's origin.
pub fn note_signer(signer: &crate::signing::Signer, origin: &str) -> anyhow::Result<NoteSigner> {
    let (seed, public) = signer.ed25519_pair()?;
    let note = NoteSigner::from_seed(origin, TYPE_ED25519, &seed)
        .map_err(|e| anyhow::anyhow!("the signing key as the log's note key (log_origin names it): {e}"))?;
    anyhow::ensure!(
        note.verifier().public == public,
        "the secret key's Ed25519 key is not its public key's"
    );
    Ok(note)
}

/// Signs a new head now, and brings this instance's view to it.
pub async fn sign_now(services: &Services) -> Result<SignedHead, ServiceError> {
    let (signer, note_signer) = (services.signer.clone(), services.note_signer.clone());
    let (origin, ttl) = (services.config.log_origin.clone(), services.config.log_head_ttl);
    // Two instances signing at once pick the same sequence; the second tries again.
    let mut attempt = 0;
    let record = loop {
        let (signer, note_signer, origin) = (signer.clone(), note_signer.clone(), origin.clone());
        match services
            .db
            .run(move |conn| sign_head(conn, &signer, &note_signer, &origin, ttl))
            .await
        {
            Ok(record) => break record,
            Err(ServiceError::Conflict(_)) if attempt < 3 => attempt += 1,
            Err(err) => return Err(err),
        }
    };
    let head = signed_head(&record)?;
    follow(services).await?;
    Ok(head)
}

/// A head that covers the whole log as it stands: the newest one when it does
/// (every entry, the active key, well before its expiry), else one signed now. So
/// reading evidence does not sign a head per download.
pub async fn covering_head(services: &Services) -> Result<SignedHead, ServiceError> {
    integrate_pending(services).await?;
    let active = services.signer.key_id().to_owned();
    let margin = TimeDelta::from_std(services.config.log_head_interval)
        .map_err(|e| ServiceError::internal("log_head_interval", e))?;
    let newest = services
        .db
        .query(move |conn| {
            let Some(head) = rows::latest_head(conn)? else {
                return Ok(None);
            };
            let covers = head.tree_size as u64 == rows::size(conn)?
                && head.key_id.eq_ignore_ascii_case(&active)
                && head.expires_at - margin > now();
            Ok(covers.then_some(head))
        })
        .await?;
    match newest {
        Some(head) => signed_head(&head),
        None => sign_now(services).await,
    }
}

/// Signs a head when the tree holds entries the newest head does not cover and
/// that head was signed `log_cover_after` (500 ms: heads at most about twice a
/// second, each entry covered within about a second) ago or more. Returns whether
/// it signed.
pub async fn cover(services: &Services) -> Result<bool, ServiceError> {
    let after = TimeDelta::from_std(services.config.log_cover_after)
        .map_err(|e| ServiceError::internal("log_cover_after", e))?;
    let (latest, size) = services
        .db
        .query(|conn| Ok((rows::latest_head(conn)?, rows::size(conn)?)))
        .await?;
    let due = match latest {
        None => true,
        Some(head) => (head.tree_size as u64) < size && head.signed_at + after <= now(),
    };
    if due {
        sign_now(services).await?;
    }
    Ok(due)
}

/// Signs a head when the newest is older than `log_head_interval`, was signed by
/// another key than the active one, or there is none: the head is fresh even when
/// nothing changed. Returns whether it signed.
pub async fn sign_if_due(services: &Services) -> Result<bool, ServiceError> {
    let latest = services.db.query(rows::latest_head).await?;
    let interval = TimeDelta::from_std(services.config.log_head_interval)
        .map_err(|e| ServiceError::internal("log_head_interval", e))?;
    // A little early, so that a run on the interval is never just too soon; and at
    // once after a key rotation, so that no answer carries a head of the key that
    // was replaced (perhaps because it leaked) for longer than a start takes.
    let active = services.signer.key_id();
    // And at once when the newest head is not also a signed note (signed before heads were).
    let due = latest.is_none_or(|h| {
        h.signed_at + interval - TimeDelta::seconds(2) <= now()
            || !h.key_id.eq_ignore_ascii_case(active)
            || h.note.is_none()
    });
    if due {
        sign_now(services).await?;
    }
    Ok(due)
}
