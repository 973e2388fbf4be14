DROP TABLE log_pending;
