DROP TRIGGER device_tallies_insert ON devices;
DROP FUNCTION device_tallies_enter();

CREATE TRIGGER device_tallies_insert AFTER INSERT ON devices
FOR EACH ROW WHEN (NEW.decommissioned_at IS NULL)
EXECUTE FUNCTION device_tallies_follow();
