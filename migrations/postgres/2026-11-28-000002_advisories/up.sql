CREATE TABLE products (
    id TEXT PRIMARY KEY NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version_scheme TEXT NOT NULL CHECK (version_scheme IN ('vendor', 'semver')),
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE advisories (
    id TEXT PRIMARY KEY NOT NULL,
    public_id TEXT UNIQUE,
    status TEXT NOT NULL CHECK (status IN ('draft', 'published', 'withdrawn')),
    draft TEXT NOT NULL,
    title TEXT NOT NULL,
    severity TEXT,
    score_tenths INTEGER,
    emergency BOOLEAN NOT NULL,
    known_exploited BOOLEAN NOT NULL,
    fix_deadline TIMESTAMP,
    latest_revision INTEGER NOT NULL,
    first_published_at TIMESTAMP,
    last_published_at TIMESTAMP,
    search_text TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX advisories_last_published_at ON advisories (last_published_at);

CREATE TABLE advisory_revisions (
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    revision INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('published', 'withdrawn')),
    published_at TIMESTAMP NOT NULL,
    change_summary TEXT NOT NULL,
    document TEXT NOT NULL,
    signature TEXT NOT NULL,
    key_id TEXT NOT NULL,
    csaf TEXT NOT NULL,
    PRIMARY KEY (advisory_id, revision)
);

CREATE TABLE advisory_cves (
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    cve TEXT NOT NULL,
    PRIMARY KEY (advisory_id, cve)
);
CREATE INDEX advisory_cves_cve ON advisory_cves (cve);

CREATE TABLE advisory_products (
    advisory_id TEXT NOT NULL REFERENCES advisories (id),
    product_id TEXT NOT NULL REFERENCES products (id),
    PRIMARY KEY (advisory_id, product_id)
);
CREATE INDEX advisory_products_product_id ON advisory_products (product_id);

CREATE TABLE advisory_counters (
    year INTEGER PRIMARY KEY NOT NULL,
    last_number INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    public_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    retired_at TIMESTAMP,
    introduced_by TEXT,
    statement TEXT,
    statement_signature TEXT
);
