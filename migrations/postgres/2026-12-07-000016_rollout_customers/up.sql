-- A customer's own choice within a rollout: hold its devices back (none is offered
-- the patch anew), or take all of them in at once while the rollout runs.
CREATE TABLE rollout_customers (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    customer_id TEXT NOT NULL REFERENCES customers (id),
    hold BOOLEAN NOT NULL,
    accelerate BOOLEAN NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (rollout_id, customer_id)
);
