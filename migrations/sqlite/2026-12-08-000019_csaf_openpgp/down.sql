ALTER TABLE advisory_revisions DROP COLUMN csaf_signature;
ALTER TABLE signing_keys DROP COLUMN openpgp_key;
