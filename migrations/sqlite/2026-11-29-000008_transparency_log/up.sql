-- The transparency log: an append-only Merkle tree (RFC 9162) over every event
-- that changes what customers or devices may trust.
--
-- `log_entries` holds each leaf exactly as it was hashed (`leaf`), with what the
-- operator's audit page shows beside it: the full kind, the subject, who acted,
-- and for an entry about one customer's fleet its customer and the opening of
-- the commitment that the public leaf carries instead of the details.
-- `log_nodes` holds the hash of every complete aligned subtree above the leaves
-- (a leaf's hash is its entry's `leaf_hash`), keyed by level
-- and index (level << 40 | index), so a proof is two reads of log2(size) rows.
-- `log_state` is the single row that appends update first: it serialises them
-- and says how many entries the log holds. `log_heads` keeps every signed tree
-- head, numbered by sequence.
CREATE TABLE log_entries (
    idx BIGINT PRIMARY KEY NOT NULL CHECK (idx >= 0),
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    customer_id TEXT REFERENCES customers (id),
    leaf TEXT NOT NULL,
    leaf_hash BLOB NOT NULL,
    opening TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX log_entries_subject ON log_entries (subject, kind);
CREATE INDEX log_entries_kind ON log_entries (kind, idx);
CREATE INDEX log_entries_customer ON log_entries (customer_id, idx) WHERE customer_id IS NOT NULL;

CREATE TABLE log_nodes (
    id BIGINT PRIMARY KEY NOT NULL,
    hash BLOB NOT NULL
);

CREATE TABLE log_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    size BIGINT NOT NULL CHECK (size >= 0)
);
INSERT INTO log_state (id, size) VALUES (1, 0);

CREATE TABLE log_heads (
    sequence BIGINT PRIMARY KEY NOT NULL CHECK (sequence > 0),
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    root_hash BLOB NOT NULL,
    signed_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    key_id TEXT NOT NULL,
    checkpoint TEXT NOT NULL,
    signature TEXT NOT NULL
);

-- A patch the vendor signs as an explicit rollback may be offered to devices that
-- run a newer version; any other patch only moves devices forward.
ALTER TABLE patches ADD COLUMN rollback BOOLEAN NOT NULL DEFAULT FALSE;
