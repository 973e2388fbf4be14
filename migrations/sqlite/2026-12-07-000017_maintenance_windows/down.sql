ALTER TABLE rollouts DROP COLUMN emergency_lane;
DROP TABLE emergency_policies;
DROP TABLE maintenance_windows;
