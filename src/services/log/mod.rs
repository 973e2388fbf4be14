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

pub mod records;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DurationRound, TimeDelta};

use crate::db::models::log::{self as rows, EntryFilter, LogEntryRecord, LogHeadRecord};
use crate::db::models::{now, utc};
use crate::db::DbConnection;
use crate::domain::event::{Actor, Event};
use crate::domain::log::{commitment, revocations_digest, sealed_text, LogKind, Revocation, TreeHead};
use crate::domain::log::{hex_proof, ConsistencyProof, EntriesPage, InclusionProof, LogEntry, OfferLog, SignedHead};
use crate::domain::merkle::{consistency_plan, inclusion_plan, leaf_hash, Hash, ProofError, ProofPlan};
use crate::ids::PatchId;
use crate::services::{ServiceError, Services};
use crate::signing::Signer;

/// The most entries one read returns.
pub const MAX_ENTRIES: u64 = 1000;

/// How many earlier heads polls carry a ready consistency proof from.
const RECENT_HEADS: i64 = 32;

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

fn proof_error(err: ProofError) -> ServiceError {
    match err {
        ProofError::MissingNode(_) => ServiceError::internal("reading the log", err),
        other => ServiceError::invalid("tree_size", other.to_string()),
    }
}

/// The hashes of `plan`, read in one query.
fn resolve(conn: &mut DbConnection, plan: &ProofPlan) -> Result<Vec<Hash>, ServiceError> {
    let found = rows::nodes(conn, &plan.nodes())?;
    plan.resolve(|n| found.get(&n).copied()).map_err(proof_error)
}

/// Signs a head over the log as it stands, with the next sequence number.
pub fn sign_head(
    conn: &mut DbConnection,
    signer: &Signer,
    origin: &str,
    ttl: std::time::Duration,
) -> Result<LogHeadRecord, ServiceError> {
    conn.write_transaction(|conn| {
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
        let at = now().duration_trunc(TimeDelta::seconds(1)).unwrap_or_else(|_| now());
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
        let record = LogHeadRecord {
            sequence,
            tree_size: size as i64,
            root_hash: root.to_vec(),
            signed_at: at,
            expires_at: at + ttl,
            key_id: signer.key_id().to_owned(),
            checkpoint: head.checkpoint(),
            signature,
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
        timestamp: utc(record.signed_at),
        sequence: record.sequence as u64,
        expires_at: utc(record.expires_at),
        key_id: record.key_id.clone(),
        checkpoint: record.checkpoint.clone(),
        signature: record.signature.clone(),
    })
}

/// Signs a new head now, and brings this instance's view to it.
pub async fn sign_now(services: &Services) -> Result<SignedHead, ServiceError> {
    let signer = services.signer.clone();
    let (origin, ttl) = (services.config.log_origin.clone(), services.config.log_head_ttl);
    // Two instances signing at once pick the same sequence; the second tries again.
    let mut attempt = 0;
    let record = loop {
        let (signer, origin) = (signer.clone(), origin.clone());
        match services
            .db
            .run(move |conn| sign_head(conn, &signer, &origin, ttl))
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
    let due = latest.is_none_or(|h| {
        h.signed_at + interval - TimeDelta::seconds(2) <= now() || !h.key_id.eq_ignore_ascii_case(active)
    });
    if due {
        sign_now(services).await?;
    }
    Ok(due)
}

/// The newest signed head.
pub async fn head(services: &Services) -> Result<SignedHead, ServiceError> {
    let record = services
        .db
        .query(rows::latest_head)
        .await?
        .ok_or_else(|| ServiceError::Unavailable("no tree head has been signed yet".into()))?;
    signed_head(&record)
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

/// One entry of the operator's audit page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEntry {
    pub index: u64,
    pub kind: String,
    pub subject: String,
    /// Who acted: a user's email, a device, a token, the server.
    pub actor: String,
    /// The actor as stored (`user:<id>`, `device:<id>` …), for filtering.
    pub actor_key: String,
    /// The slug of the customer a sealed entry concerns.
    pub customer: Option<String>,
    pub at: String,
    /// What the entry says: its text, or for a sealed one the opened details.
    pub details: String,
    pub sealed: bool,
}

/// The operator's audit page: the newest head and one page of the timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timeline {
    pub head: Option<SignedHead>,
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next (older) page, when there is one.
    pub older: Option<u64>,
    pub kinds: Vec<&'static str>,
    pub customers: Vec<String>,
}

/// What the audit page lists.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    /// A customer's slug.
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub before: Option<u64>,
}

/// Entries per page of the audit page.
const TIMELINE_PAGE: i64 = 100;

/// One page of the log as a timeline, newest first, filtered; for vendor staff.
pub async fn timeline(services: &Services, query: TimelineQuery) -> Result<Timeline, ServiceError> {
    use crate::db::models::{Customer, User};
    services
        .db
        .run(move |conn| {
            let non_empty =
                |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
            let kind = non_empty(&query.kind);
            if let Some(kind) = &kind {
                kind.parse::<LogKind>().map_err(|e| ServiceError::invalid("kind", e))?;
            }
            let customers = Customer::list(conn)?;
            let customer = match non_empty(&query.customer) {
                Some(slug) => Some(
                    customers
                        .iter()
                        .find(|c| c.slug == slug)
                        .map(|c| c.id.to_string())
                        .ok_or_else(|| ServiceError::invalid("customer", format!("there is no customer `{slug}`")))?,
                ),
                None => None,
            };
            let filter = EntryFilter {
                kind,
                actor: non_empty(&query.actor),
                customer,
                before: query.before.map(|b| b as i64),
            };
            let rows = rows::recent(conn, &filter, TIMELINE_PAGE + 1)?;
            let users: HashMap<String, String> = User::list_with_customer(conn, None)?
                .into_iter()
                .map(|(u, _)| (format!("user:{}", u.id), u.email))
                .collect();
            let slugs: HashMap<String, String> = customers.iter().map(|c| (c.id.to_string(), c.slug.clone())).collect();
            let older = (rows.len() as i64 > TIMELINE_PAGE).then(|| rows[TIMELINE_PAGE as usize - 1].idx as u64);
            let entries = rows
                .into_iter()
                .take(TIMELINE_PAGE as usize)
                .map(|e| {
                    let details = Opening::of(&e).map_or_else(|| e.leaf.clone(), |o| o.entry);
                    AuditEntry {
                        index: e.idx as u64,
                        sealed: e.opening.is_some(),
                        actor: users.get(&e.actor).cloned().unwrap_or_else(|| e.actor.clone()),
                        actor_key: e.actor,
                        customer: e.customer_id.map(|c| slugs.get(&c).cloned().unwrap_or(c)),
                        at: utc(e.created_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        kind: e.kind,
                        subject: e.subject,
                        details,
                    }
                })
                .collect();
            let head = rows::latest_head(conn)?.map(|h| signed_head(&h)).transpose()?;
            Ok(Timeline {
                head,
                entries,
                older,
                kinds: LogKind::ALL.iter().map(|k| k.as_str()).collect(),
                customers: customers.into_iter().map(|c| c.slug).collect(),
            })
        })
        .await
}

/// What polls carry of the log, rendered once per head.
#[derive(Debug, Default)]
pub struct LogView {
    pub sequence: u64,
    pub tree_size: u64,
    /// The head, as JSON.
    pub head: Option<Arc<str>>,
    /// Each published patch's entry and its inclusion in the head, as JSON.
    pub offers: HashMap<PatchId, Arc<str>>,
    /// Consistency proofs to the head from the sizes of recent heads, as JSON.
    pub consistency: HashMap<u64, Arc<str>>,
    /// The patches yanked within the head's tree, which its signature commits to, as
    /// JSON: answers that offer a patch carry it.
    pub revoked: Option<Arc<str>>,
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

fn to_json<T: serde::Serialize>(value: &T) -> Result<Arc<str>, ServiceError> {
    serde_json::to_string(value)
        .map(Arc::from)
        .map_err(|e| ServiceError::internal("rendering the log view", e))
}

/// Brings this instance's view to the newest head, when it moved. Returns whether
/// it did.
pub async fn follow(services: &Services) -> Result<bool, ServiceError> {
    let _one_at_a_time = services.log.following.lock().await;
    let known = services.log.view().sequence;
    let view = services
        .db
        .run(move |conn| {
            let Some(latest) = rows::latest_head(conn)? else {
                return Ok::<_, ServiceError>(None);
            };
            if latest.sequence as u64 == known {
                return Ok(None);
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

/// Logs what was published before this server kept a log (a server upgraded to
/// it): signing keys, advisory revisions, patches and their yanking, release
/// images — each once, keys first, then in the order they were made. Runs at start;
/// returns how many entries it appended.
pub fn backfill(conn: &mut DbConnection) -> Result<usize, ServiceError> {
    use std::collections::HashSet;

    use crate::db::models::{AdvisoryRecord, PatchRecord, Product, ReleaseImage, RevisionRecord, SigningKeyRecord};
    use crate::domain::PatchState;

    conn.write_transaction(|conn| {
        // Every later event is logged in its own transaction, so once the log holds
        // anything besides keys there is nothing left to fill in.
        if rows::holds_more_than_keys(conn)? {
            return Ok(0);
        }
        let logged: HashSet<(String, String)> = rows::subjects(conn)?.into_iter().collect();
        let mut missing: Vec<(chrono::NaiveDateTime, Event)> = Vec::new();
        let mut keep = |at: chrono::NaiveDateTime, event: Event| {
            if !logged.contains(&(event.subject().to_string(), event.kind().as_str().to_owned())) {
                missing.push((at, event));
            }
        };
        for key in SigningKeyRecord::list(conn)? {
            keep(key.created_at, records::key_introduced(&key));
            if let Some(retired) = key.retired_at {
                keep(retired, records::key_retired(&key));
            }
        }
        for advisory in AdvisoryRecord::list_all(conn)? {
            let Some(public_id) = &advisory.public_id else {
                continue;
            };
            for revision in RevisionRecord::list(conn, &advisory.id)? {
                keep(revision.published_at, records::revision(public_id, &revision));
            }
        }
        for view in PatchRecord::list(conn, None)? {
            if view.patch.state == PatchState::Draft {
                continue;
            }
            let published = view.patch.published_at.unwrap_or(view.patch.created_at);
            keep(published, records::patch_published(&view)?);
            if let Some(yanked) = view.patch.yanked_at {
                keep(yanked, records::patch_yanked(&view));
            }
        }
        for product in Product::list(conn)? {
            for image in ReleaseImage::of_product(conn, &product.id)? {
                keep(image.created_at, records::image(&product.slug, &image));
            }
        }
        // Keys before what they signed; then by time.
        missing.sort_by_key(|(at, event)| (!matches!(event, Event::KeyIntroduced(_)), *at));
        let count = missing.len();
        for (_, event) in missing {
            append(conn, &event, &Actor::Server)?;
        }
        if count > 0 {
            tracing::info!(count, "logged what was published before the transparency log");
        }
        Ok(count)
    })
}

/// The index of the newest entry about `subject`, whatever its kind.
pub fn index_of_subject(conn: &mut DbConnection, subject: &str) -> Result<Option<u64>, ServiceError> {
    Ok(rows::about(conn, &[subject.to_owned()], None)?
        .last()
        .map(|e| e.idx as u64))
}
