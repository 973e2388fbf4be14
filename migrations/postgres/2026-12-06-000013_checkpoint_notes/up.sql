-- Each head is also a C2SP signed note: the checkpoint and the log's Ed25519
-- signature line (heads signed before have none).
ALTER TABLE log_heads ADD COLUMN note TEXT;
-- Witnesses' cosignatures of heads: one tlog-cosignature/v1 line per witness and
-- head, with the time the witness signed.
CREATE TABLE log_cosignatures (
    sequence BIGINT NOT NULL REFERENCES log_heads (sequence),
    witness TEXT NOT NULL,
    line TEXT NOT NULL,
    cosigned_at TIMESTAMP NOT NULL,
    PRIMARY KEY (sequence, witness)
);
