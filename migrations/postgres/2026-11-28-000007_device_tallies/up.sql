-- Live devices counted by customer, product, version and latest install report,
-- kept as signed deltas that triggers append whenever a device enters, leaves or
-- changes group, so exposure reads a few rows instead of counting the fleet. The
-- fold-tallies job sums old deltas into one row per group. Appending (never
-- updating a shared counter) keeps concurrent writers from waiting on each other.
CREATE TABLE device_tallies (
    id BIGSERIAL PRIMARY KEY,
    customer_id TEXT NOT NULL,
    product_id TEXT NOT NULL,
    version TEXT,
    report_state TEXT,
    report_patch_id TEXT,
    devices BIGINT NOT NULL
);
CREATE INDEX device_tallies_group ON device_tallies (product_id, customer_id);

INSERT INTO device_tallies (customer_id, product_id, version, report_state, report_patch_id, devices)
SELECT customer_id, product_id, version, report_state, report_patch_id, COUNT(*)
FROM devices WHERE decommissioned_at IS NULL
GROUP BY customer_id, product_id, version, report_state, report_patch_id;

CREATE FUNCTION device_tallies_follow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.decommissioned_at IS NULL THEN
        INSERT INTO device_tallies (customer_id, product_id, version, report_state, report_patch_id, devices)
        VALUES (OLD.customer_id, OLD.product_id, OLD.version, OLD.report_state, OLD.report_patch_id, -1);
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') AND NEW.decommissioned_at IS NULL THEN
        INSERT INTO device_tallies (customer_id, product_id, version, report_state, report_patch_id, devices)
        VALUES (NEW.customer_id, NEW.product_id, NEW.version, NEW.report_state, NEW.report_patch_id, 1);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER device_tallies_insert AFTER INSERT ON devices
FOR EACH ROW WHEN (NEW.decommissioned_at IS NULL)
EXECUTE FUNCTION device_tallies_follow();

CREATE TRIGGER device_tallies_delete AFTER DELETE ON devices
FOR EACH ROW WHEN (OLD.decommissioned_at IS NULL)
EXECUTE FUNCTION device_tallies_follow();

CREATE TRIGGER device_tallies_update
AFTER UPDATE OF customer_id, product_id, version, report_state, report_patch_id, decommissioned_at ON devices
FOR EACH ROW WHEN (OLD.customer_id IS DISTINCT FROM NEW.customer_id OR OLD.product_id IS DISTINCT FROM NEW.product_id
  OR OLD.version IS DISTINCT FROM NEW.version OR OLD.report_state IS DISTINCT FROM NEW.report_state
  OR OLD.report_patch_id IS DISTINCT FROM NEW.report_patch_id
  OR (OLD.decommissioned_at IS NULL) <> (NEW.decommissioned_at IS NULL))
EXECUTE FUNCTION device_tallies_follow();
