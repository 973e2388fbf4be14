-- A value sealed with the key that seals pull tokens and webhook secrets: an
-- instance opens it at start, and refuses to start with any other key (a lost or
-- replaced key file would otherwise seal new values that no one else can open, and
-- make every value sealed before unreadable).
CREATE TABLE sealing_key_check (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    sealed TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
