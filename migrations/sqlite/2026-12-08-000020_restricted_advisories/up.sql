-- Who may read an advisory: everyone (TLP:WHITE), or only the customers named in
-- advisory_readers (TLP:AMBER or TLP:RED), besides the vendor.
ALTER TABLE advisories ADD COLUMN tlp TEXT NOT NULL DEFAULT 'WHITE';
CREATE TABLE advisory_readers (
    advisory_id TEXT NOT NULL REFERENCES advisories (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    PRIMARY KEY (advisory_id, customer_id)
);
CREATE INDEX advisory_readers_customer_id ON advisory_readers (customer_id);
