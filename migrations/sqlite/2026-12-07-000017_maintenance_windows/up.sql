-- A customer's maintenance windows, in the order it gave them: when its devices
-- (all, or those with the window's labels) may install, and how many at once (the
-- window as the customer gave it, JSON).
CREATE TABLE maintenance_windows (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    position INTEGER NOT NULL,
    spec TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, position)
);

-- The places of devices installing now in a window that caps how many do at once:
-- a device keeps its place until it reports the install's end or the place lapses
-- when the window closes. Every instance takes places here, so the cap holds for
-- the whole cluster.
CREATE TABLE install_places (
    customer_id TEXT NOT NULL REFERENCES customers (id),
    window_position INTEGER NOT NULL,
    device_id TEXT NOT NULL REFERENCES devices (id),
    expires_at TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, window_position, device_id)
);
CREATE INDEX install_places_by_device ON install_places (device_id);

-- A customer's choice, made beforehand, that patches fixing an emergency advisory
-- install at once, whatever its windows say.
CREATE TABLE emergency_policies (
    customer_id TEXT PRIMARY KEY NOT NULL REFERENCES customers (id),
    ignore_windows BOOLEAN NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- A rollout in the emergency lane takes in only devices exposed to an advisory its
-- patch fixes, and reaches customers that opted in whatever their windows say.
ALTER TABLE rollouts ADD COLUMN emergency_lane BOOLEAN NOT NULL DEFAULT FALSE;

-- A running rollout looks every second for devices enrolled since its wave opened:
-- found by this index among a product's live devices, not by reading all of them.
CREATE INDEX devices_enrolled ON devices (product_id, created_at) WHERE decommissioned_at IS NULL;
