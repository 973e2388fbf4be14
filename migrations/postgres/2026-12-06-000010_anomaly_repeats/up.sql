-- An open anomaly counts its repeats instead of being raised again: a device that
-- keeps showing unknown images leaves one flag to acknowledge, saying how often and
-- when last, not one flag (and one webhook event) per image.
ALTER TABLE anomalies ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE anomalies ADD COLUMN last_detected_at TIMESTAMP;
CREATE INDEX anomalies_open ON anomalies (device_id, kind) WHERE acknowledged_at IS NULL;
