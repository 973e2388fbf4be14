//! Wire types of the transparency log: the signed tree head, entries, proofs, and
//! the log position that publish answers and poll offers carry. Devices, auditors
//! and the server share them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::log::{parse_hash, TreeHead};
use crate::domain::merkle::Hash;
use crate::signing;

/// `GET /api/v1/log/head`: a signed tree head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedHead {
    pub origin: String,
    pub tree_size: u64,
    /// Hex.
    pub root_hash: String,
    pub timestamp: DateTime<Utc>,
    pub sequence: u64,
    pub expires_at: DateTime<Utc>,
    pub key_id: String,
    /// The C2SP checkpoint text that `signature` signs.
    pub checkpoint: String,
    /// A minisign signature of `checkpoint`; its trusted comment binds origin, size,
    /// root, time, sequence and expiry.
    pub signature: String,
}

impl SignedHead {
    /// Checks the signature with the key that `public_key` finds for the signer's
    /// key id, and that every field says what the signed text says.
    pub fn verify(&self, public_key: impl Fn(&str) -> Option<String>) -> Result<TreeHead, String> {
        let signer = signing::signer_key_id(&self.signature)?;
        let key = public_key(&signer).ok_or_else(|| format!("the tree head is signed by key {signer}, which is not trusted"))?;
        let verified = signing::verify(&key, std::io::Cursor::new(self.checkpoint.as_bytes()), &self.signature)
            .map_err(|e| format!("the tree head's signature does not verify: {e}"))?;
        let head = TreeHead::from_signed(&self.checkpoint, &verified.trusted_comment)?;
        let root = parse_hash(&self.root_hash)?;
        let agrees = head.origin == self.origin
            && head.tree_size == self.tree_size
            && head.root_hash == root
            && head.timestamp.timestamp() == self.timestamp.timestamp()
            && head.sequence == self.sequence
            && head.expires_at.timestamp() == self.expires_at.timestamp()
            && verified.key_id.eq_ignore_ascii_case(&self.key_id);
        if !agrees {
            return Err("the tree head's fields differ from what its signature covers".into());
        }
        Ok(head)
    }
}

/// One entry: its index, its exact text, and the leaf hash of that text (hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub index: u64,
    pub leaf: String,
    pub leaf_hash: String,
}

/// `GET /api/v1/log/entries?start=&end=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntriesPage {
    pub tree_size: u64,
    pub entries: Vec<LogEntry>,
}

/// `GET /api/v1/log/proof/inclusion?index=&tree_size=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    /// Hex hashes, RFC 9162 order.
    pub proof: Vec<String>,
}

/// `GET /api/v1/log/proof/consistency?from=&to=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    /// Hex hashes, RFC 9162 order.
    pub proof: Vec<String>,
}

/// Where a published item sits in the log, as a poll offer carries it: its entry,
/// and the proof that the head of the same answer includes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferLog {
    pub index: u64,
    pub leaf: String,
    pub tree_size: u64,
    pub proof: Vec<String>,
}

/// The log position a publish answer carries: the entry and a head that includes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logged {
    pub index: u64,
    pub tree_head: SignedHead,
}

/// Hex hashes to hashes.
pub fn parse_proof(proof: &[String]) -> Result<Vec<Hash>, String> {
    proof.iter().map(|h| parse_hash(h)).collect()
}

/// Hashes to hex.
pub fn hex_proof(proof: &[Hash]) -> Vec<String> {
    proof.iter().map(hex::encode).collect()
}
