-- The OpenPGP public key that belongs to a signing key (CSAF 2.0 §7.1.20), kept so
-- that the signatures of a retired key stay verifiable.
ALTER TABLE signing_keys ADD COLUMN openpgp_key TEXT;
-- The OpenPGP detached signature of a revision's CSAF document (§7.1.19).
ALTER TABLE advisory_revisions ADD COLUMN csaf_signature TEXT;
