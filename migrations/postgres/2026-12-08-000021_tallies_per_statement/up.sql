-- Devices entering the fleet are tallied once per statement and group instead of
-- once per row: a bulk import (one COPY of a million devices) appends a row per
-- group, not a million rows the fold-tallies job then sums again. Updates and
-- deletes keep their per-row triggers, whose conditions skip rows that stay in
-- their group.
DROP TRIGGER device_tallies_insert ON devices;

CREATE FUNCTION device_tallies_enter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO device_tallies (customer_id, product_id, version, report_state, report_patch_id, devices)
    SELECT customer_id, product_id, version, report_state, report_patch_id, COUNT(*)
    FROM entered WHERE decommissioned_at IS NULL
    GROUP BY customer_id, product_id, version, report_state, report_patch_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER device_tallies_insert AFTER INSERT ON devices
REFERENCING NEW TABLE AS entered
FOR EACH STATEMENT EXECUTE FUNCTION device_tallies_enter();
