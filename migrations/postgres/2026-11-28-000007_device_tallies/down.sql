DROP TRIGGER device_tallies_update ON devices;
DROP TRIGGER device_tallies_delete ON devices;
DROP TRIGGER device_tallies_insert ON devices;
DROP FUNCTION device_tallies_follow();
DROP TABLE device_tallies;
