//! Reading an upload body: every chunk counted against a limit and, when asked,
//! hashed on the way; and the check of a finished file against the hash expected.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};

use super::StorageError;

pub(super) fn check_expected(expected: Option<&str>, actual: &str) -> Result<(), StorageError> {
    match expected {
        Some(expected) if expected != actual => Err(StorageError::HashMismatch {
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// An upload body as it arrives: each chunk counted against a limit and hashed.
pub(super) struct Intake {
    pub(super) received: u64,
    limit: u64,
    hasher: Option<Sha256>,
}

/// What the next read of a body gave.
pub(super) enum Arrival {
    Chunk(Bytes),
    End,
    /// The body broke off (the client went away); the reason.
    Broken(String),
}

/// The body would pass the limit.
pub(super) struct OverLimit;

impl Intake {
    /// Counts from `received` up to `limit` bytes; hashes only when `hash` is set.
    pub(super) fn new(received: u64, limit: u64, hash: bool) -> Intake {
        Intake {
            received,
            limit,
            hasher: hash.then(Sha256::new),
        }
    }

    pub(super) async fn next<S, E>(&mut self, body: &mut S) -> Result<Arrival, OverLimit>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        match body.next().await {
            None => Ok(Arrival::End),
            Some(Err(err)) => Ok(Arrival::Broken(err.to_string())),
            Some(Ok(chunk)) => {
                if self.received + chunk.len() as u64 > self.limit {
                    return Err(OverLimit);
                }
                if let Some(hasher) = &mut self.hasher {
                    hasher.update(&chunk);
                }
                self.received += chunk.len() as u64;
                Ok(Arrival::Chunk(chunk))
            }
        }
    }

    /// The SHA-256 of everything counted, when hashing.
    pub(super) fn sha256(self) -> Option<String> {
        self.hasher.map(|hasher| hex::encode(hasher.finalize()))
    }
}
