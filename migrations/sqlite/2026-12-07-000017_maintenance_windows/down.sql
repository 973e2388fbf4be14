DROP INDEX devices_enrolled;
ALTER TABLE rollouts DROP COLUMN emergency_lane;
DROP TABLE emergency_policies;
DROP TABLE install_places;
DROP TABLE maintenance_windows;
