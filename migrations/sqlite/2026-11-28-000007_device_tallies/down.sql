DROP TRIGGER device_tallies_update;
DROP TRIGGER device_tallies_delete;
DROP TRIGGER device_tallies_insert;
DROP TABLE device_tallies;
