DROP TABLE webhook_deliveries;
DROP TABLE webhook_events;
DROP TABLE webhooks;
DROP TABLE anomalies;
DROP TABLE release_images;
DROP TABLE pull_failures;
DROP TABLE device_pulls;
ALTER TABLE customers DROP COLUMN pull_schedule;
