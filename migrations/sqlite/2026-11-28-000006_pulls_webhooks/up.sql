-- Pulls, release images, anomaly flags and webhooks.
--
-- `device_pulls` holds, for each device with a pull URL, where and how to ask it
-- for its version and the scheduler's state: when it is next due, which instance
-- holds it (a lease that expires, so a dead holder's work is taken over), and how
-- long it has been failing. Pull tokens and webhook secrets are sealed under the
-- server's key (XChaCha20-Poly1305), never stored in the clear.
ALTER TABLE customers ADD COLUMN pull_schedule TEXT;

CREATE TABLE device_pulls (
    device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices (id),
    customer_id TEXT NOT NULL REFERENCES customers (id),
    url TEXT NOT NULL,
    schedule TEXT,
    token_sealed TEXT,
    due_at TIMESTAMP,
    lease_holder TEXT,
    lease_until TIMESTAMP,
    failures INTEGER NOT NULL CHECK (failures >= 0),
    unreachable_since TIMESTAMP,
    last_attempt_at TIMESTAMP,
    last_success_at TIMESTAMP,
    last_failure TEXT
);
CREATE INDEX device_pulls_due ON device_pulls (due_at);
CREATE INDEX device_pulls_unreachable ON device_pulls (unreachable_since) WHERE unreachable_since IS NOT NULL;

-- Failed pulls in a device's history, consecutive identical ones folded.
CREATE TABLE pull_failures (
    id TEXT PRIMARY KEY NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id),
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    first_at TIMESTAMP NOT NULL,
    last_at TIMESTAMP NOT NULL,
    times BIGINT NOT NULL CHECK (times > 0)
);
CREATE INDEX pull_failures_device ON pull_failures (device_id, last_at);

-- Image hashes of releases as the vendor built them; '' platform means any.
CREATE TABLE release_images (
    id TEXT PRIMARY KEY NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    version TEXT NOT NULL,
    platform TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX release_images_unique ON release_images (product_id, image_sha256, version, platform);

CREATE TABLE anomalies (
    id TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    version TEXT,
    image_sha256 TEXT,
    dedupe_key TEXT NOT NULL UNIQUE,
    detected_at TIMESTAMP NOT NULL,
    acknowledged_by TEXT,
    acknowledged_at TIMESTAMP,
    ack_comment TEXT
);
CREATE INDEX anomalies_customer ON anomalies (customer_id, detected_at);
CREATE INDEX anomalies_device ON anomalies (device_id, detected_at);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX webhooks_customer ON webhooks (customer_id, created_at);

-- Events are written in the transaction of what caused them (an outbox); each
-- subscribed webhook gets a delivery, retried until it succeeds or a day passes.
CREATE TABLE webhook_events (
    id TEXT PRIMARY KEY NOT NULL,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    dedupe_key TEXT UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY NOT NULL,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id),
    event_id TEXT NOT NULL REFERENCES webhook_events (id),
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP,
    give_up_at TIMESTAMP NOT NULL,
    lease_holder TEXT,
    lease_until TIMESTAMP,
    last_status INTEGER,
    last_error TEXT,
    last_attempt_at TIMESTAMP,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_once ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, created_at);
