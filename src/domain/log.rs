//! What the transparency log records and how its tree heads read. An entry is one
//! line of canonical JSON, the exact bytes its leaf hash covers; an entry about one
//! customer's fleet shows the world only a salted commitment to its details, which
//! that customer (and an auditor it hands them to) can open. A tree head is a C2SP
//! `tlog-checkpoint` (origin, size, base64 root hash) signed with minisign, the
//! trusted comment binding the same origin, size and root with the time it was
//! signed, its sequence number and its expiry, so a device can refuse an older head
//! (rollback) or an expired one (freeze). The comment also commits to the patches
//! yanked within the tree ([`Revocation`]): an answer that offers a patch carries
//! that list, so a device checks that what it is offered was not withdrawn without
//! reading the log between two heads.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use serde::{Deserialize, Serialize};

use super::advisory::canonical_json;
use super::merkle::Hash;
use super::note::{Note, VerifierKey, TYPE_ED25519};
use crate::signing;

/// What an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogKind {
    AdvisoryPublished,
    AdvisoryRevised,
    AdvisoryWithdrawn,
    PatchPublished,
    PatchYanked,
    KeyIntroduced,
    KeyRetired,
    ImageRegistered,
    DeviceEnrolled,
    DeviceDecommissioned,
    InstallReported,
    FixObserved,
    RolloutChanged,
}

impl LogKind {
    pub const ALL: [LogKind; 13] = [
        LogKind::AdvisoryPublished,
        LogKind::AdvisoryRevised,
        LogKind::AdvisoryWithdrawn,
        LogKind::PatchPublished,
        LogKind::PatchYanked,
        LogKind::KeyIntroduced,
        LogKind::KeyRetired,
        LogKind::ImageRegistered,
        LogKind::DeviceEnrolled,
        LogKind::DeviceDecommissioned,
        LogKind::InstallReported,
        LogKind::FixObserved,
        LogKind::RolloutChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::AdvisoryPublished => "advisory.published",
            LogKind::AdvisoryRevised => "advisory.revised",
            LogKind::AdvisoryWithdrawn => "advisory.withdrawn",
            LogKind::PatchPublished => "patch.published",
            LogKind::PatchYanked => "patch.yanked",
            LogKind::KeyIntroduced => "key.introduced",
            LogKind::KeyRetired => "key.retired",
            LogKind::ImageRegistered => "image.registered",
            LogKind::DeviceEnrolled => "device.enrolled",
            LogKind::DeviceDecommissioned => "device.decommissioned",
            LogKind::InstallReported => "install.reported",
            LogKind::FixObserved => "fix.observed",
            LogKind::RolloutChanged => "rollout.changed",
        }
    }

    /// Whether its details concern one customer's fleet, and are sealed.
    pub fn is_customer_scoped(self) -> bool {
        matches!(
            self,
            LogKind::DeviceEnrolled | LogKind::DeviceDecommissioned | LogKind::InstallReported | LogKind::FixObserved
        )
    }

    /// Whether it is an advisory revision.
    pub fn is_advisory(self) -> bool {
        matches!(
            self,
            LogKind::AdvisoryPublished | LogKind::AdvisoryRevised | LogKind::AdvisoryWithdrawn
        )
    }
}

impl fmt::Display for LogKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        LogKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a kind of log entry"))
    }
}

/// The kind a sealed entry shows the world.
pub const SEALED: &str = "sealed";

/// The subject of an advisory revision's entry.
pub fn advisory_subject(public_id: &str, revision: i32) -> String {
    format!("advisory/{public_id}/{revision}")
}

/// The subject of a patch's entries.
pub fn patch_subject(patch_id: &str) -> String {
    format!("patch/{patch_id}")
}

/// The canonical text of a public entry: its kind, subject, time and `fields`.
pub fn entry_text(kind: LogKind, subject: &str, at: DateTime<Utc>, fields: Map<String, Value>) -> String {
    let mut object = fields;
    object.insert("v".into(), 1.into());
    object.insert("kind".into(), kind.as_str().into());
    object.insert("subject".into(), subject.into());
    object.insert(
        "at".into(),
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into(),
    );
    canonical_json(&Value::Object(object))
}

/// The commitment a sealed entry carries to `details` (an entry text) under `salt`.
pub fn commitment(salt: &str, details: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"patchwarden-sealed-entry-v1\n");
    hasher.update(salt.as_bytes());
    hasher.update(b"\n");
    hasher.update(details.as_bytes());
    hex::encode(hasher.finalize())
}

/// The public text of a sealed entry.
pub fn sealed_text(commitment: &str) -> String {
    canonical_json(&serde_json::json!({"v": 1, "kind": SEALED, "commitment": commitment}))
}

/// A parsed public entry: what an auditor or a device reads of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// `None` for a sealed entry.
    pub kind: Option<LogKind>,
    pub subject: Option<String>,
    pub fields: Map<String, Value>,
}

impl Entry {
    pub fn parse(text: &str) -> Result<Entry, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("the entry is not JSON: {e}"))?;
        if canonical_json(&value) != text {
            return Err("the entry is not in canonical form".into());
        }
        let Value::Object(fields) = value else {
            return Err("the entry is not a JSON object".into());
        };
        let kind = match fields.get("kind").and_then(Value::as_str) {
            Some(SEALED) => None,
            Some(kind) => Some(kind.parse()?),
            None => return Err("the entry names no kind".into()),
        };
        let subject = fields.get("subject").and_then(Value::as_str).map(str::to_owned);
        if kind.is_some() && subject.is_none() {
            return Err("the entry names no subject".into());
        }
        Ok(Entry { kind, subject, fields })
    }

    /// A text field.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }
}

/// The SHA-256 of some bytes, in hex: how entries name what was signed.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A patch the vendor withdrew from offer, as its `patch.yanked` entry records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The index of the `patch.yanked` entry.
    pub index: u64,
    pub patch: String,
    pub reason: String,
}

impl Revocation {
    /// The revocation a `patch.yanked` entry at `index` records, if it is one.
    pub fn of_entry(index: u64, text: &str) -> Option<Revocation> {
        let entry = Entry::parse(text).ok()?;
        if entry.kind != Some(LogKind::PatchYanked) {
            return None;
        }
        Some(Revocation {
            index,
            patch: entry.subject.as_deref()?.strip_prefix("patch/")?.to_owned(),
            reason: entry.text("reason").unwrap_or_default().to_owned(),
        })
    }
}

/// What a head's trusted comment says of the revocations in its tree: the SHA-256
/// of their canonical JSON, in log order.
pub fn revocations_digest(revocations: &[Revocation]) -> Hash {
    let value = serde_json::to_value(revocations).unwrap_or(Value::Null);
    Sha256::digest(canonical_json(&value).as_bytes()).into()
}

/// A tree head as it is signed: the checkpoint's three lines and what the trusted
/// comment adds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: Hash,
    pub timestamp: DateTime<Utc>,
    pub sequence: u64,
    pub expires_at: DateTime<Utc>,
    /// The digest of the patches yanked within the tree ([`revocations_digest`]);
    /// `None` in heads signed before heads carried it.
    pub revoked: Option<Hash>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl TreeHead {
    /// The C2SP checkpoint text: origin, size and base64 root hash, one per line.
    pub fn checkpoint(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.tree_size,
            b64().encode(self.root_hash)
        )
    }

    /// The trusted comment of its signature.
    pub fn trusted_comment(&self) -> String {
        let revoked = self
            .revoked
            .map(|digest| format!(" revoked={}", hex::encode(digest)))
            .unwrap_or_default();
        format!(
            "patchwarden-log-head origin={} size={} root={} timestamp={} sequence={} expires={}{revoked}",
            self.origin,
            self.tree_size,
            b64().encode(self.root_hash),
            self.timestamp.timestamp(),
            self.sequence,
            self.expires_at.timestamp()
        )
    }

    /// The head a checkpoint and a verified trusted comment describe, when the two
    /// agree.
    pub fn from_signed(checkpoint: &str, trusted_comment: &str) -> Result<TreeHead, String> {
        let mut lines = checkpoint.split('\n');
        let (Some(origin), Some(size), Some(root), Some("")) = (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err("the checkpoint is not three lines of origin, size and root hash".into());
        };
        let tree_size: u64 = size
            .parse()
            .map_err(|_| format!("the checkpoint's size `{size}` is not a number"))?;
        let root_bytes = b64()
            .decode(root)
            .map_err(|_| "the checkpoint's root hash is not base64".to_owned())?;
        let root_hash: Hash = root_bytes
            .try_into()
            .map_err(|_| "the checkpoint's root hash is not 32 bytes".to_owned())?;
        let mut words = trusted_comment.split(' ');
        if words.next() != Some("patchwarden-log-head") {
            return Err("the signature's trusted comment is not that of a tree head".into());
        }
        let mut field = |name: &str| -> Result<String, String> {
            words
                .next()
                .and_then(|w| w.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
                .ok_or_else(|| format!("the trusted comment has no {name}"))
        };
        let signed = (field("origin")?, field("size")?, field("root")?);
        if signed != (origin.to_owned(), size.to_owned(), root.to_owned()) {
            return Err("the trusted comment does not bind this checkpoint's origin, size and root".into());
        }
        let time = |text: String, what: &str| {
            text.parse::<i64>()
                .ok()
                .and_then(|s| DateTime::from_timestamp(s, 0))
                .ok_or_else(|| format!("the trusted comment's {what} is not a time"))
        };
        let timestamp = time(field("timestamp")?, "timestamp")?;
        let sequence = field("sequence")?
            .parse()
            .map_err(|_| "the trusted comment's sequence is not a number".to_owned())?;
        let expires_at = time(field("expires")?, "expiry")?;
        let revoked = match words.next() {
            None => None,
            Some(word) => Some(
                word.strip_prefix("revoked=")
                    .and_then(|digest| parse_hash(digest).ok())
                    .ok_or_else(|| format!("the trusted comment's `{word}` is not a digest of revocations"))?,
            ),
        };
        if let Some(extra) = words.next() {
            return Err(format!(
                "the trusted comment ends in `{extra}`, which no tree head says"
            ));
        }
        Ok(TreeHead {
            origin: origin.to_owned(),
            tree_size,
            root_hash,
            timestamp,
            sequence,
            expires_at,
            revoked,
        })
    }
}

/// Decodes a hex hash.
pub fn parse_hash(text: &str) -> Result<Hash, String> {
    let bytes = hex::decode(text).map_err(|_| format!("`{text}` is not a hex hash"))?;
    bytes.try_into().map_err(|_| format!("`{text}` is not a 32-byte hash"))
}

// The wire shapes of the log, shared by the server, devices and auditors.

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
        let key = public_key(&signer)
            .ok_or_else(|| format!("the tree head is signed by key {signer}, which is not trusted"))?;
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

/// `GET /api/v1/log/head`: the newest head, whose `checkpoint` is the C2SP signed
/// note (the checkpoint body, the log's Ed25519 note signature and the witnesses'
/// cosignatures) and whose `signature` is the minisign signature of the body; the
/// note's key is `note_verifier_key`, the same Ed25519 key as the minisign key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHead {
    pub origin: String,
    pub tree_size: u64,
    /// Hex.
    pub root_hash: String,
    pub timestamp: DateTime<Utc>,
    pub sequence: u64,
    pub expires_at: DateTime<Utc>,
    pub key_id: String,
    pub checkpoint: String,
    pub signature: String,
    pub note_verifier_key: String,
}

impl LogHead {
    /// The head of `signed` with its checkpoint as the signed `note`.
    pub fn new(signed: SignedHead, note: &Note, key: &VerifierKey) -> LogHead {
        LogHead {
            origin: signed.origin,
            tree_size: signed.tree_size,
            root_hash: signed.root_hash,
            timestamp: signed.timestamp,
            sequence: signed.sequence,
            expires_at: signed.expires_at,
            key_id: signed.key_id,
            checkpoint: note.to_text(),
            signature: signed.signature,
            note_verifier_key: key.to_string(),
        }
    }

    /// The minisign-signed head inside: the checkpoint body in place of the note.
    pub fn signed_head(&self) -> Result<SignedHead, String> {
        let note = Note::parse(&self.checkpoint).map_err(|e| format!("the checkpoint is not a signed note: {e}"))?;
        Ok(SignedHead {
            origin: self.origin.clone(),
            tree_size: self.tree_size,
            root_hash: self.root_hash.clone(),
            timestamp: self.timestamp,
            sequence: self.sequence,
            expires_at: self.expires_at,
            key_id: self.key_id.clone(),
            checkpoint: note.text,
            signature: self.signature.clone(),
        })
    }

    /// Checks the minisign signature (with the key `public_key` finds, as
    /// [`SignedHead::verify`]) and the note signature of `note_verifier_key`, which
    /// must be named by the origin and hold the same Ed25519 key that signed the
    /// head. Returns the head and the note, whose other lines are unchecked here.
    pub fn verify(&self, public_key: impl Fn(&str) -> Option<String>) -> Result<(TreeHead, Note), String> {
        let signed = self.signed_head()?;
        let minisign_key = public_key(&signing::signer_key_id(&signed.signature)?);
        let head = signed.verify(|id| public_key(id))?;
        let key = VerifierKey::parse(&self.note_verifier_key)?;
        let expected = minisign_key.map(|k| note_key(&head.origin, &k)).transpose()?;
        if expected.as_ref() != Some(&key) {
            return Err("the note verifier key is not the log's signing key under the log's origin".into());
        }
        let note = Note::parse(&self.checkpoint)?;
        if note.verified_by(&key).is_none() {
            return Err("the checkpoint's note signature does not verify".into());
        }
        Ok((head, note))
    }
}

/// The note verifier key of a log: the Ed25519 key of the minisign key
/// `public_key` under the log's `origin`.
pub fn note_key(origin: &str, public_key: &str) -> Result<VerifierKey, String> {
    VerifierKey::new(origin, TYPE_ED25519, signing::ed25519_public_of(public_key)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_reads_back_from_its_checkpoint_and_comment_and_a_mismatch_is_refused() {
        let head = TreeHead {
            origin: "updates.example.com/log".into(),
            tree_size: 42,
            root_hash: [7; 32],
            timestamp: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            sequence: 9,
            expires_at: DateTime::from_timestamp(1_800_003_600, 0).unwrap(),
            revoked: Some([3; 32]),
        };
        let checkpoint = head.checkpoint();
        assert_eq!(checkpoint.lines().count(), 3);
        assert_eq!(
            TreeHead::from_signed(&checkpoint, &head.trusted_comment()).unwrap(),
            head
        );
        let other = TreeHead {
            tree_size: 43,
            ..head.clone()
        };
        let err = TreeHead::from_signed(&checkpoint, &other.trusted_comment()).unwrap_err();
        assert!(err.contains("does not bind"), "{err}");
        // A head signed before heads committed to revocations still reads.
        let older = TreeHead {
            revoked: None,
            ..head.clone()
        };
        assert_eq!(
            TreeHead::from_signed(&checkpoint, &older.trusted_comment()).unwrap(),
            older
        );
        let padded = format!("{} extra=1", head.trusted_comment());
        assert!(TreeHead::from_signed(&checkpoint, &padded).is_err());
    }

    #[test]
    fn the_revocation_digest_covers_every_field_and_the_order() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut fields = Map::new();
        fields.insert("reason".into(), "bricks the SSG-5".into());
        let text = entry_text(LogKind::PatchYanked, "patch/pat_1", at, fields);
        let yanked = Revocation::of_entry(7, &text).unwrap();
        assert_eq!(
            yanked,
            Revocation {
                index: 7,
                patch: "pat_1".into(),
                reason: "bricks the SSG-5".into()
            }
        );
        let published = entry_text(LogKind::PatchPublished, "patch/pat_1", at, Map::new());
        assert_eq!(Revocation::of_entry(6, &published), None);
        let other = Revocation {
            index: 9,
            patch: "pat_2".into(),
            reason: "wrong build".into(),
        };
        let both = revocations_digest(&[yanked.clone(), other.clone()]);
        assert_ne!(both, revocations_digest(&[other.clone(), yanked.clone()]));
        assert_ne!(both, revocations_digest(std::slice::from_ref(&yanked)));
        let reworded = Revocation {
            reason: "fine".into(),
            ..yanked.clone()
        };
        assert_ne!(both, revocations_digest(&[reworded, other]));
        assert_ne!(revocations_digest(&[]), both);
    }

    #[test]
    fn entries_are_canonical_and_sealed_ones_hide_their_details() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut fields = Map::new();
        fields.insert("sha256".into(), "ab".into());
        let text = entry_text(LogKind::PatchPublished, "patch/p1", at, fields);
        let entry = Entry::parse(&text).unwrap();
        assert_eq!(entry.kind, Some(LogKind::PatchPublished));
        assert_eq!(entry.text("sha256"), Some("ab"));
        assert!(Entry::parse(&text.replace(",\"v\"", ", \"v\"")).is_err());
        let sealed = sealed_text(&commitment("salt", &text));
        assert!(!sealed.contains("patch/p1"));
        assert_eq!(Entry::parse(&sealed).unwrap().kind, None);
        assert_ne!(commitment("salt", &text), commitment("other", &text));
    }
}
