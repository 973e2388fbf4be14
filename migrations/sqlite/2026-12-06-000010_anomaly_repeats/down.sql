DROP INDEX anomalies_open;
ALTER TABLE anomalies DROP COLUMN last_detected_at;
ALTER TABLE anomalies DROP COLUMN occurrences;
