DROP TABLE advisory_readers;
ALTER TABLE advisories DROP COLUMN tlp;
