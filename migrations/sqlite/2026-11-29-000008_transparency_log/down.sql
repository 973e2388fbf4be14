ALTER TABLE patches DROP COLUMN rollback;
DROP TABLE log_heads;
DROP TABLE log_state;
DROP TABLE log_nodes;
DROP TABLE log_entries;
