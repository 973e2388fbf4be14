-- Entries committed with their events but not yet in the tree: an append inserts
-- one row here without taking the tree's lock, and the sequencer moves them into
-- `log_entries` in batches, in the order it reads them, assigning their indexes.
CREATE TABLE log_pending (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    customer_id TEXT REFERENCES customers (id),
    leaf TEXT NOT NULL,
    leaf_hash BYTEA NOT NULL,
    opening TEXT,
    created_at TIMESTAMP NOT NULL
);
