-- A published patch reaching its fleet in waves. While a rollout of a patch is in
-- draft, running or paused, the patch is offered only to the members of the waves
-- opened so far (and, once paused or cancelled, to the devices already offered it);
-- once finished, to every device it applies to.
CREATE TABLE rollouts (
    id TEXT PRIMARY KEY NOT NULL,
    patch_id TEXT NOT NULL REFERENCES patches (id),
    state TEXT NOT NULL,
    -- The open wave's position; NULL before the rollout starts.
    current_wave INTEGER,
    -- Why it is paused (a threshold crossed, or the operator's reason).
    reason TEXT,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- At most one rollout of a patch is in force.
CREATE UNIQUE INDEX rollouts_one_in_force ON rollouts (patch_id)
    WHERE state IN ('draft', 'running', 'paused');

-- A wave's selector and thresholds as the vendor gave them (JSON), and when it
-- opened and closed.
CREATE TABLE rollout_waves (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    position INTEGER NOT NULL,
    spec TEXT NOT NULL,
    opened_at TIMESTAMP,
    closed_at TIMESTAMP,
    PRIMARY KEY (rollout_id, position)
);

-- Which wave each device belongs to, decided when the wave opens (and for devices
-- that enrol later, when the rollout next looks at its fleet).
CREATE TABLE rollout_members (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    device_id TEXT NOT NULL REFERENCES devices (id),
    wave INTEGER NOT NULL,
    joined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);

-- Who did what to a rollout, and what the rollout did by itself.
CREATE TABLE rollout_history (
    id TEXT PRIMARY KEY NOT NULL,
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    wave INTEGER,
    reason TEXT
);
CREATE INDEX rollout_history_by_rollout ON rollout_history (rollout_id, at);
