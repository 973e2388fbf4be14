-- How fresh a device's view of the transparency log is, as it last said (in a poll
-- or a pull answer): the age of the newest genuine tree head it holds, and since
-- when it has said it is stale (cut off from genuine answers, or frozen).
ALTER TABLE devices ADD COLUMN head_age_s BIGINT;
ALTER TABLE devices ADD COLUMN stale_since TIMESTAMP;
CREATE INDEX devices_stale ON devices (customer_id) WHERE stale_since IS NOT NULL;
