DROP INDEX devices_stale;
ALTER TABLE devices DROP COLUMN stale_since;
ALTER TABLE devices DROP COLUMN head_age_s;
