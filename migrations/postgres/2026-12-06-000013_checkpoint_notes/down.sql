DROP TABLE log_cosignatures;
ALTER TABLE log_heads DROP COLUMN note;
