//! The transparency log's rows: entries waiting to be integrated, entries, the
//! complete subtrees' hashes, the one row that serialises integration, and the
//! signed tree heads.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{log_cosignatures, log_entries, log_heads, log_nodes, log_pending, log_state};
use crate::db::DbConnection;

use super::ROWS_PER_INSERT;
use crate::domain::merkle::{Frontier, Hash, Node};

/// One entry as stored.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = log_entries)]
#[diesel(treat_none_as_default_value = false)]
pub struct LogEntryRecord {
    pub idx: i64,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub customer_id: Option<String>,
    pub leaf: String,
    pub leaf_hash: Vec<u8>,
    pub opening: Option<String>,
    pub created_at: NaiveDateTime,
}

/// An entry as appended, waiting for the sequencer to give it an index.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = log_pending)]
#[diesel(treat_none_as_default_value = false)]
pub struct PendingEntry {
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub customer_id: Option<String>,
    pub leaf: String,
    pub leaf_hash: Vec<u8>,
    pub opening: Option<String>,
    pub created_at: NaiveDateTime,
}

impl PendingEntry {
    /// The entry at `idx`.
    fn at(self, idx: u64) -> LogEntryRecord {
        LogEntryRecord {
            idx: idx as i64,
            kind: self.kind,
            subject: self.subject,
            actor: self.actor,
            customer_id: self.customer_id,
            leaf: self.leaf,
            leaf_hash: self.leaf_hash,
            opening: self.opening,
            created_at: self.created_at,
        }
    }
}

/// Queues `entries` in order inside the caller's transaction, so they commit with
/// the events they record. Takes no lock that other appends wait on.
pub fn enqueue(conn: &mut DbConnection, entries: &[PendingEntry]) -> QueryResult<()> {
    insert_many!(&mut *conn, log_pending::table, entries);
    Ok(())
}

/// Whether any entry waits to be integrated.
pub fn any_pending(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(log_pending::table.select(log_pending::id))).get_result(conn)
}

/// Integrates up to `limit` pending entries, oldest first, inside the caller's
/// write transaction: takes the log's row lock (one sequencer at a time), gives
/// them the next indexes, inserts them and the subtrees they complete with
/// multi-row statements (the tree's right edge read once), and removes them from
/// the queue — all or none. Returns how many.
pub fn integrate(conn: &mut DbConnection, limit: i64) -> QueryResult<usize> {
    let size: i64 = diesel::update(log_state::table.find(1))
        .set(log_state::size.eq(log_state::size))
        .returning(log_state::size)
        .get_result(conn)?;
    let pending: Vec<(i64, PendingEntry)> = log_pending::table
        .order(log_pending::id)
        .limit(limit)
        .select((log_pending::id, PendingEntry::as_select()))
        .load(conn)?;
    if pending.is_empty() {
        return Ok(0);
    }
    let first = size as u64;
    let mut frontier = frontier(conn, first)?;
    let mut ids = Vec::with_capacity(pending.len());
    let mut entries = Vec::with_capacity(pending.len());
    let mut completed = Vec::with_capacity(pending.len());
    for (offset, (id, entry)) in pending.into_iter().enumerate() {
        let leaf = hash_of(entry.leaf_hash.clone())?;
        // The leaf itself is stored with its entry; only the subtrees it completes here.
        for (node, hash) in frontier.push(leaf).into_iter().filter(|(node, _)| node.level > 0) {
            completed.push((log_nodes::id.eq(node.key()), log_nodes::hash.eq(hash.to_vec())));
        }
        entries.push(entry.at(first + offset as u64));
        ids.push(id);
    }
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        on_backend!(&mut *conn, |c| diesel::insert_into(log_entries::table)
            .values(chunk)
            .execute(c))?;
    }
    for chunk in completed.chunks(ROWS_PER_INSERT) {
        on_backend!(&mut *conn, |c| diesel::insert_into(log_nodes::table)
            .values(chunk)
            .execute(c))?;
    }
    for chunk in ids.chunks(ROWS_PER_INSERT) {
        diesel::delete(log_pending::table.filter(log_pending::id.eq_any(chunk))).execute(conn)?;
    }
    let count = ids.len();
    diesel::update(log_state::table.find(1))
        .set(log_state::size.eq(size + count as i64))
        .execute(conn)?;
    Ok(count)
}

/// One signed tree head as stored.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = log_heads)]
pub struct LogHeadRecord {
    pub sequence: i64,
    pub tree_size: i64,
    pub root_hash: Vec<u8>,
    pub signed_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub key_id: String,
    pub checkpoint: String,
    pub signature: String,
    /// The checkpoint as a C2SP signed note, signed with the same key.
    pub note: Option<String>,
}

/// One witness's cosignature of a head.
#[derive(Clone, Debug, Queryable, Selectable, Insertable)]
#[diesel(table_name = log_cosignatures)]
pub struct CosignatureRecord {
    pub sequence: i64,
    pub witness: String,
    /// The `tlog-cosignature/v1` signature line.
    pub line: String,
    pub cosigned_at: NaiveDateTime,
}

/// The cosignatures of head `sequence`, by witness.
pub fn cosignatures(conn: &mut DbConnection, sequence: i64) -> QueryResult<Vec<CosignatureRecord>> {
    log_cosignatures::table
        .filter(log_cosignatures::sequence.eq(sequence))
        .order(log_cosignatures::witness)
        .select(CosignatureRecord::as_select())
        .load(conn)
}

/// The newest head and the cosignatures stored for it.
pub fn latest_head_cosigned(conn: &mut DbConnection) -> QueryResult<Option<(LogHeadRecord, Vec<CosignatureRecord>)>> {
    let Some(head) = latest_head(conn)? else {
        return Ok(None);
    };
    let cosignatures = cosignatures(conn, head.sequence)?;
    Ok(Some((head, cosignatures)))
}

/// Stores a cosignature (a witness's second answer for one head replaces its first).
pub fn insert_cosignature(conn: &mut DbConnection, record: &CosignatureRecord) -> QueryResult<()> {
    diesel::delete(
        log_cosignatures::table
            .filter(log_cosignatures::sequence.eq(record.sequence))
            .filter(log_cosignatures::witness.eq(&record.witness)),
    )
    .execute(conn)?;
    diesel::insert_into(log_cosignatures::table)
        .values(record)
        .execute(conn)
        .map(drop)
}

/// What the audit page filters by.
#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    pub kind: Option<String>,
    pub actor: Option<String>,
    pub customer: Option<String>,
    /// Entries below this index (for paging back in time).
    pub before: Option<i64>,
}

fn hash_of(bytes: Vec<u8>) -> QueryResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| diesel::result::Error::DeserializationError("a stored log hash is not 32 bytes".into()))
}

/// The number of entries in the log.
pub fn size(conn: &mut DbConnection) -> QueryResult<u64> {
    let size: i64 = log_state::table.find(1).select(log_state::size).first(conn)?;
    Ok(size as u64)
}

/// The hashes of `nodes`, those that are stored: leaves (level 0) are the
/// entries' own leaf hashes, the subtrees above them rows of `log_nodes`.
pub fn nodes(conn: &mut DbConnection, nodes: &[Node]) -> QueryResult<HashMap<Node, Hash>> {
    let (leaves, inner): (Vec<&Node>, Vec<&Node>) = nodes.iter().partition(|n| n.level == 0);
    let mut found = HashMap::with_capacity(nodes.len());
    let leaf_ids: Vec<i64> = leaves.iter().map(|n| n.index as i64).collect();
    for chunk in leaf_ids.chunks(500) {
        let rows: Vec<(i64, Vec<u8>)> = log_entries::table
            .filter(log_entries::idx.eq_any(chunk))
            .select((log_entries::idx, log_entries::leaf_hash))
            .load(conn)?;
        for (index, hash) in rows {
            found.insert(
                Node {
                    level: 0,
                    index: index as u64,
                },
                hash_of(hash)?,
            );
        }
    }
    let keys: Vec<i64> = inner.iter().map(|n| n.key()).collect();
    for chunk in keys.chunks(500) {
        let rows: Vec<(i64, Vec<u8>)> = log_nodes::table
            .filter(log_nodes::id.eq_any(chunk))
            .select((log_nodes::id, log_nodes::hash))
            .load(conn)?;
        for (key, hash) in rows {
            found.insert(Node::from_key(key), hash_of(hash)?);
        }
    }
    Ok(found)
}

/// The frontier of the first `size` entries.
pub fn frontier(conn: &mut DbConnection, size: u64) -> QueryResult<Frontier> {
    let wanted = Frontier::nodes(size);
    let found = nodes(conn, &wanted)?;
    let hashes = wanted
        .iter()
        .map(|n| {
            found.get(n).copied().ok_or_else(|| {
                diesel::result::Error::DeserializationError(
                    format!("log node {}/{} is missing", n.level, n.index).into(),
                )
            })
        })
        .collect::<QueryResult<Vec<_>>>()?;
    Frontier::new(size, hashes).map_err(|e| diesel::result::Error::DeserializationError(e.to_string().into()))
}

/// Entries `start..end`, in order.
pub fn entries(conn: &mut DbConnection, start: u64, end: u64) -> QueryResult<Vec<LogEntryRecord>> {
    log_entries::table
        .filter(log_entries::idx.ge(start as i64))
        .filter(log_entries::idx.lt(end as i64))
        .order(log_entries::idx)
        .select(LogEntryRecord::as_select())
        .load(conn)
}

/// One entry.
pub fn entry(conn: &mut DbConnection, index: u64) -> QueryResult<Option<LogEntryRecord>> {
    log_entries::table
        .find(index as i64)
        .select(LogEntryRecord::as_select())
        .first(conn)
        .optional()
}

/// The entries about `subject` (of `kind`, when given), oldest first.
pub fn about(conn: &mut DbConnection, subjects: &[String], kind: Option<&str>) -> QueryResult<Vec<LogEntryRecord>> {
    let mut query = log_entries::table
        .filter(log_entries::subject.eq_any(subjects))
        .order(log_entries::idx)
        .select(LogEntryRecord::as_select())
        .into_boxed();
    if let Some(kind) = kind {
        query = query.filter(log_entries::kind.eq(kind.to_owned()));
    }
    query.load(conn)
}

/// The newest entries that pass `filter`, newest first.
pub fn recent(conn: &mut DbConnection, filter: &EntryFilter, limit: i64) -> QueryResult<Vec<LogEntryRecord>> {
    let mut query = log_entries::table
        .order(log_entries::idx.desc())
        .limit(limit)
        .select(LogEntryRecord::as_select())
        .into_boxed();
    if let Some(kind) = &filter.kind {
        query = query.filter(log_entries::kind.eq(kind.clone()));
    }
    if let Some(actor) = &filter.actor {
        query = query.filter(log_entries::actor.eq(actor.clone()));
    }
    if let Some(customer) = &filter.customer {
        query = query.filter(log_entries::customer_id.eq(customer.clone()));
    }
    if let Some(before) = filter.before {
        query = query.filter(log_entries::idx.lt(before));
    }
    query.load(conn)
}

/// Whether the log holds any entry besides signing keys'.
pub fn holds_more_than_keys(conn: &mut DbConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        log_entries::table.filter(log_entries::kind.not_like("key.%")),
    ))
    .get_result(conn)
}

/// Every (subject, kind) the log holds.
pub fn subjects(conn: &mut DbConnection) -> QueryResult<Vec<(String, String)>> {
    log_entries::table
        .filter(log_entries::customer_id.is_null())
        .select((log_entries::subject, log_entries::kind))
        .distinct()
        .load(conn)
}

/// The entries of `kind` among the first `size`, oldest first.
pub fn of_kind(conn: &mut DbConnection, kind: &str, size: u64) -> QueryResult<Vec<LogEntryRecord>> {
    log_entries::table
        .filter(log_entries::kind.eq(kind))
        .filter(log_entries::idx.lt(size as i64))
        .order(log_entries::idx)
        .select(LogEntryRecord::as_select())
        .load(conn)
}

/// The entries of `customer` of the given kinds, oldest first.
pub fn of_customer(conn: &mut DbConnection, customer: &str, kinds: &[&str]) -> QueryResult<Vec<LogEntryRecord>> {
    log_entries::table
        .filter(log_entries::customer_id.eq(customer))
        .filter(log_entries::kind.eq_any(kinds))
        .order(log_entries::idx)
        .select(LogEntryRecord::as_select())
        .load(conn)
}

/// The newest signed head.
pub fn latest_head(conn: &mut DbConnection) -> QueryResult<Option<LogHeadRecord>> {
    log_heads::table
        .order(log_heads::sequence.desc())
        .select(LogHeadRecord::as_select())
        .first(conn)
        .optional()
}

/// Head `sequence`.
pub fn head(conn: &mut DbConnection, sequence: i64) -> QueryResult<Option<LogHeadRecord>> {
    log_heads::table
        .find(sequence)
        .select(LogHeadRecord::as_select())
        .first(conn)
        .optional()
}

/// The newest heads, newest first.
pub fn heads(conn: &mut DbConnection, limit: i64) -> QueryResult<Vec<LogHeadRecord>> {
    heads_before(conn, None, limit)
}

/// The newest heads below sequence `before` (all when `None`), newest first.
pub fn heads_before(conn: &mut DbConnection, before: Option<i64>, limit: i64) -> QueryResult<Vec<LogHeadRecord>> {
    let mut query = log_heads::table
        .order(log_heads::sequence.desc())
        .limit(limit)
        .select(LogHeadRecord::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(log_heads::sequence.lt(before));
    }
    query.load(conn)
}

pub fn insert_head(conn: &mut DbConnection, head: &LogHeadRecord) -> QueryResult<()> {
    diesel::insert_into(log_heads::table)
        .values(head)
        .execute(conn)
        .map(drop)
}

/// The root hash of the first `size` entries.
pub fn root(conn: &mut DbConnection, size: u64) -> QueryResult<Hash> {
    Ok(frontier(conn, size)?.root())
}

impl LogHeadRecord {
    pub fn root(&self) -> QueryResult<Hash> {
        hash_of(self.root_hash.clone())
    }
}

/// The leaf hashes of entries `start..end`, in order.
pub fn leaf_hashes(conn: &mut DbConnection, start: u64, end: u64) -> QueryResult<Vec<Vec<u8>>> {
    log_entries::table
        .filter(log_entries::idx.ge(start as i64))
        .filter(log_entries::idx.lt(end as i64))
        .order(log_entries::idx)
        .select(log_entries::leaf_hash)
        .load(conn)
}

/// The hashes of the complete subtrees at `level` (above the leaves) with indexes
/// `start..end`, in order: those that are stored.
pub fn level_hashes(conn: &mut DbConnection, level: u32, start: u64, end: u64) -> QueryResult<Vec<Vec<u8>>> {
    let key = |index: u64| Node { level, index }.key();
    log_nodes::table
        .filter(log_nodes::id.ge(key(start)))
        .filter(log_nodes::id.lt(key(end)))
        .order(log_nodes::id)
        .select(log_nodes::hash)
        .load(conn)
}
