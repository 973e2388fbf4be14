//! Signed tree heads: signing one over the log as it stands (committing to the
//! patches yanked within it), when one is due, and reading the newest and the history.

use chrono::{DurationRound, TimeDelta};

use crate::db::models::log::{self as rows, CosignatureRecord, LogHeadRecord};
use crate::db::models::{now, utc};
use crate::db::DbConnection;
use crate::domain::log::{revocations_digest, LogKind, Revocation, TreeHead};
use crate::domain::log::{LogHead, SignedHead};
use crate::domain::note::{Note, NoteSignature, NoteSigner};
use crate::services::{ServiceError, Services};
use crate::signing::Signer;

/// Signs a head over the log as it stands, with the next sequence number.
pub fn sign_head(
    conn: &mut DbConnection,
    signer: &Signer,
    note_signer: &NoteSigner,
    origin: &str,
    ttl: std::time::Duration,
) -> Result<LogHeadRecord, ServiceError> {
    conn.write_transaction(|conn| {
        // Everything committed before is in the tree the head covers.
        super::integrate(conn)?;
        // The newest head first, then the size: a head signed in between either
        // holds the sequence taken here (the insert fails; the caller tries again)
        // or covers no more than the size read after it, so sizes never go back.
        let latest = rows::latest_head(conn)?;
        let sequence = latest.as_ref().map_or(1, |h| h.sequence + 1);
        let size = rows::size(conn)?;
        if latest.as_ref().is_some_and(|h| h.tree_size as u64 > size) {
            return Err(ServiceError::Conflict("the log is shorter than its newest head".into()));
        }
        let root = rows::root(conn, size)?;
        let revoked = revocations(conn, size)?;
        // The head names the whole second; the row keeps the instant, which paces
        // the heads that cover new entries.
        let signed = now();
        let at = whole_second(signed);
        let ttl = TimeDelta::from_std(ttl).map_err(|e| ServiceError::internal("log_head_ttl", e))?;
        let head = TreeHead {
            origin: origin.to_owned(),
            tree_size: size,
            root_hash: root,
            timestamp: utc(at),
            sequence: sequence as u64,
            expires_at: utc(at + ttl),
            revoked: Some(revocations_digest(&revoked)),
        };
        let signature = signer
            .sign(head.checkpoint().as_bytes(), &head.trusted_comment())
            .map_err(ServiceError::Internal)?;
        let checkpoint = head.checkpoint();
        let note = Note {
            signatures: vec![note_signer.sign(&checkpoint)],
            text: checkpoint,
        };
        let record = LogHeadRecord {
            sequence,
            tree_size: size as i64,
            root_hash: root.to_vec(),
            signed_at: signed,
            expires_at: at + ttl,
            key_id: signer.key_id().to_owned(),
            checkpoint: head.checkpoint(),
            signature,
            note: Some(note.to_text()),
        };
        rows::insert_head(conn, &record).map_err(|e| {
            if crate::services::error::is_unique_violation(&e) {
                ServiceError::Conflict(format!("another instance signed head {sequence} meanwhile"))
            } else {
                e.into()
            }
        })?;
        Ok(record)
    })
}

/// `at` to the whole second, as heads name their time.
fn whole_second(at: chrono::NaiveDateTime) -> chrono::NaiveDateTime {
    at.duration_trunc(TimeDelta::seconds(1)).unwrap_or(at)
}

/// The patches yanked within the first `size` entries, in log order: what a head of
/// that size commits to.
pub fn revocations(conn: &mut DbConnection, size: u64) -> Result<Vec<Revocation>, ServiceError> {
    rows::of_kind(conn, LogKind::PatchYanked.as_str(), size)?
        .into_iter()
        .map(|entry| {
            Revocation::of_entry(entry.idx as u64, &entry.leaf)
                .ok_or_else(|| ServiceError::internal("reading the log", format!("entry {} is no yank", entry.idx)))
        })
        .collect()
}

/// A stored head on the wire; its origin is the first line of what was signed.
pub fn signed_head(record: &LogHeadRecord) -> Result<SignedHead, ServiceError> {
    let root = record.root()?;
    Ok(SignedHead {
        origin: record.checkpoint.lines().next().unwrap_or_default().to_owned(),
        tree_size: record.tree_size as u64,
        root_hash: hex::encode(root),
        timestamp: utc(whole_second(record.signed_at)),
        sequence: record.sequence as u64,
        expires_at: utc(record.expires_at),
        key_id: record.key_id.clone(),
        checkpoint: record.checkpoint.clone(),
        signature: record.signature.clone(),
    })
}

/// `head`'s signed note with the stored `cosignatures` added; `None` for a head
/// signed before heads were notes.
pub fn cosigned_note(head: &LogHeadRecord, cosignatures: &[CosignatureRecord]) -> Result<Option<Note>, ServiceError> {
    let Some(text) = head.note.as_deref() else {
        return Ok(None);
    };
    let mut note = Note::parse(text).map_err(|e| ServiceError::internal("reading a stored checkpoint note", e))?;
    for stored in cosignatures {
        match NoteSignature::parse(stored.line.trim_end_matches('\n')) {
            Ok(signature) => note.add(signature),
            Err(e) => tracing::warn!(witness = %stored.witness, error = %e, "a stored cosignature does not read"),
        }
    }
    Ok(Some(note))
}

/// The newest head that is also a signed note, with the cosignatures witnesses
/// gave it. A log whose newest head predates notes gets a new head first.
async fn newest_note(services: &Services) -> Result<(LogHeadRecord, Note), ServiceError> {
    for _ in 0..2 {
        if let Some((head, cosignatures)) = services.db.query(rows::latest_head_cosigned).await? {
            if let Some(note) = cosigned_note(&head, &cosignatures)? {
                return Ok((head, note));
            }
        }
        super::sign_now(services).await?;
    }
    Err(ServiceError::Unavailable("no tree head has been signed yet".into()))
}

/// The newest head, its checkpoint the cosigned note.
pub async fn head(services: &Services) -> Result<LogHead, ServiceError> {
    let (record, note) = newest_note(services).await?;
    Ok(LogHead::new(
        signed_head(&record)?,
        &note,
        services.note_signer.verifier(),
    ))
}

/// The newest checkpoint as a C2SP signed note, with the witnesses' cosignatures.
pub async fn checkpoint(services: &Services) -> Result<String, ServiceError> {
    Ok(newest_note(services).await?.1.to_text())
}

/// Signed heads, newest first: at most `limit` (1 to 100) below sequence `before`.
pub async fn history(services: &Services, before: Option<u64>, limit: u32) -> Result<Vec<SignedHead>, ServiceError> {
    if !(1..=100).contains(&limit) {
        return Err(ServiceError::invalid("limit", "limit is 1 to 100"));
    }
    services
        .db
        .run(move |conn| {
            rows::heads_before(conn, before.map(|b| b as i64), i64::from(limit))?
                .iter()
                .map(signed_head)
                .collect()
        })
        .await
}
