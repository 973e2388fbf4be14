-- A resumable upload of a draft patch's file: how much of the declared size the
-- server holds, and where (a partial file, or an S3 multipart upload with its parts);
-- the SHA-256 the client declared for the whole file, when it did.
CREATE TABLE patch_uploads (
    patch_id TEXT PRIMARY KEY NOT NULL REFERENCES patches (id),
    storage_key TEXT NOT NULL,
    multipart_id TEXT,
    parts TEXT NOT NULL,
    size BIGINT NOT NULL CHECK (size > 0),
    sha256 TEXT,
    received BIGINT NOT NULL CHECK (received >= 0 AND received <= size),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
