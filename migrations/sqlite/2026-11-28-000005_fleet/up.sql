-- The fleet: devices of each customer, the tokens that let devices enrol
-- themselves, what each device was seen running (observations, consecutive
-- identical ones folded into one row), the patches offered to it, its install
-- reports, and hourly exposure counts per advisory and customer for the charts.
-- `fleet_state` holds two change counters that every instance reads to keep its
-- in-memory copy of devices and of the offer catalogue in step with the database:
-- each change takes the row's lock, so counter order is commit order.
CREATE TABLE fleet_state (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    devices_generation BIGINT NOT NULL,
    catalogue_generation BIGINT NOT NULL
);
INSERT INTO fleet_state (id, devices_generation, catalogue_generation) VALUES (1, 0, 0);

CREATE TABLE enrollment_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    label TEXT NOT NULL,
    lookup TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    max_uses INTEGER NOT NULL CHECK (max_uses > 0),
    uses INTEGER NOT NULL CHECK (uses >= 0),
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX enrollment_tokens_customer ON enrollment_tokens (customer_id, created_at);

CREATE TABLE devices (
    id TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    name TEXT NOT NULL,
    platform TEXT,
    labels TEXT NOT NULL,
    token_lookup TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    enrollment_token_id TEXT REFERENCES enrollment_tokens (id),
    version TEXT,
    image_sha256 TEXT,
    version_source TEXT,
    latest_observation_id TEXT,
    last_seen_at TIMESTAMP,
    report_patch_id TEXT REFERENCES patches (id),
    report_state TEXT,
    report_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    decommissioned_at TIMESTAMP,
    change_seq BIGINT NOT NULL
);
-- Live devices only (the fleet's reads all leave decommissioned ones out): the
-- exposure counts read this index alone, and device lists walk it in name order.
CREATE INDEX devices_exposure ON devices (product_id, customer_id, version, report_state, report_patch_id)
    WHERE decommissioned_at IS NULL;
CREATE INDEX devices_by_name ON devices (product_id, name, id) WHERE decommissioned_at IS NULL;
-- Devices with an install report, few among many: where stalled installs are found.
CREATE INDEX devices_reporting ON devices (report_state, report_at)
    WHERE decommissioned_at IS NULL AND report_state IS NOT NULL;
CREATE INDEX devices_customer ON devices (customer_id, name, id) WHERE decommissioned_at IS NULL;
CREATE INDEX devices_change ON devices (change_seq);

CREATE TABLE device_labels (
    device_id TEXT NOT NULL REFERENCES devices (id),
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (device_id, name)
);
CREATE INDEX device_labels_value ON device_labels (name, value);

CREATE TABLE observations (
    id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id),
    version TEXT NOT NULL,
    image_sha256 TEXT,
    source TEXT NOT NULL,
    last_source TEXT NOT NULL,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    times BIGINT NOT NULL CHECK (times > 0)
);
CREATE INDEX observations_device ON observations (device_id, last_seen_at);

CREATE TABLE device_offers (
    device_id TEXT NOT NULL REFERENCES devices (id),
    patch_id TEXT NOT NULL REFERENCES patches (id),
    first_offered_at TIMESTAMP NOT NULL,
    PRIMARY KEY (device_id, patch_id)
);

CREATE TABLE install_reports (
    id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id),
    patch_id TEXT NOT NULL REFERENCES patches (id),
    state TEXT NOT NULL,
    version TEXT,
    message TEXT,
    reported_at TIMESTAMP NOT NULL
);
CREATE INDEX install_reports_device ON install_reports (device_id, id);

CREATE TABLE exposure_history (
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    customer_id TEXT NOT NULL REFERENCES customers (id),
    recorded_at TIMESTAMP NOT NULL,
    affected BIGINT NOT NULL,
    fixed BIGINT NOT NULL,
    unaffected BIGINT NOT NULL,
    unknown BIGINT NOT NULL,
    PRIMARY KEY (advisory_id, customer_id, recorded_at)
);
