DROP TABLE signing_keys;
DROP TABLE advisory_counters;
DROP TABLE advisory_products;
DROP TABLE advisory_cves;
DROP TABLE advisory_revisions;
DROP TABLE advisories;
DROP TABLE products;
