-- A password an admin was shown when inviting a colleague: it signs the colleague in
-- once, to set a password of their own, and opens nothing else.
ALTER TABLE users ADD COLUMN password_change_required BOOLEAN NOT NULL DEFAULT FALSE;
