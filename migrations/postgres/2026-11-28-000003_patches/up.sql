CREATE TABLE entitlements (
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    product_id TEXT NOT NULL REFERENCES products (id),
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (customer_id, product_id)
);

CREATE TABLE patches (
    id TEXT PRIMARY KEY NOT NULL,
    product_id TEXT NOT NULL REFERENCES products (id),
    version TEXT NOT NULL,
    platform TEXT,
    applies_to TEXT NOT NULL,
    filename TEXT NOT NULL,
    expected_sha256 TEXT,
    sha256 TEXT,
    size BIGINT,
    state TEXT NOT NULL CHECK (state IN ('draft', 'published', 'yanked')),
    signature TEXT,
    key_id TEXT,
    yank_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    uploaded_at TIMESTAMP,
    published_at TIMESTAMP,
    yanked_at TIMESTAMP
);
CREATE INDEX patches_product_id ON patches (product_id);

CREATE TABLE patch_advisories (
    patch_id TEXT NOT NULL REFERENCES patches (id),
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    PRIMARY KEY (patch_id, advisory_id)
);
CREATE INDEX patch_advisories_advisory_id ON patch_advisories (advisory_id);
