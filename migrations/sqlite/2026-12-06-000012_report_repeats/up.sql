-- An install step a device reports again (the same patch, state, version and
-- message as its latest report) is counted on that report, as repeated sightings
-- are on an observation, instead of adding a row each time.
ALTER TABLE install_reports ADD COLUMN times INTEGER NOT NULL DEFAULT 1;
ALTER TABLE install_reports ADD COLUMN last_reported_at TIMESTAMP;
