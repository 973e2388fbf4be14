//! Offline proofs that something is in the log: the C2SP `tlog-proof` text (the
//! entry's index, its inclusion proof and a checkpoint with its cosignatures), and
//! the proof of a patch's publication built on it. A patch's proof carries in its
//! `extra` line what a verifier without the server needs besides the standard
//! fields ([`ProofExtra`]): the entry itself, the minisign signature of the
//! checkpoint (whose trusted comment dates the head and commits to the yanked
//! patches) and those yanked patches. Nothing in `extra` is trusted as it comes:
//! the entry is checked by its inclusion, the signature by the vendor's key, the
//! yanked patches by the digest that signature covers.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::log::{note_key, revocations_digest, Entry, LogKind, Revocation, TreeHead};
use super::merkle::{leaf_hash, verify_inclusion, Hash};
use super::note::Note;
use crate::signing;

/// The first line of every proof.
pub const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The file extension proofs are saved under.
pub const PROOF_EXTENSION: &str = "tlog-proof";

/// The most hashes an inclusion proof has (a tree of 2^64 entries).
const MAX_PROOF_HASHES: usize = 64;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A C2SP `tlog-proof`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated data for the application.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    /// The inclusion proof, from the leaf's sibling up (RFC 6962 §2.1.1).
    pub proof: Vec<Hash>,
    /// The checkpoint, a signed note with any cosignatures.
    pub checkpoint: Note,
}

impl TlogProof {
    /// Reads a proof: the header line, an optional `extra` line, the `index` line,
    /// the base64 hashes, a blank line and the checkpoint note.
    pub fn parse(text: &str) -> Result<TlogProof, String> {
        let (head, note) = text
            .split_once("\n\n")
            .ok_or_else(|| "a tlog-proof is its lines, a blank line and the checkpoint".to_owned())?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(format!("a tlog-proof starts with the line `{PROOF_HEADER}`"));
        }
        let mut line = lines.next();
        let extra = match line.and_then(|l| l.strip_prefix("extra ")) {
            Some(data) => {
                line = lines.next();
                Some(
                    b64()
                        .decode(data)
                        .map_err(|_| "the proof's extra data is not base64".to_owned())?,
                )
            }
            None => None,
        };
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .ok_or_else(|| "the proof has no `index` line".to_owned())?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || (index.len() > 1 && index.starts_with('0'))
        {
            return Err(format!(
                "the proof's index `{index}` is not a decimal without leading zeroes"
            ));
        }
        let index: u64 = index
            .parse()
            .map_err(|_| format!("the proof's index `{index}` is too large"))?;
        let mut proof = Vec::new();
        for (n, line) in lines.enumerate() {
            if n >= MAX_PROOF_HASHES {
                return Err(format!("an inclusion proof has at most {MAX_PROOF_HASHES} hashes"));
            }
            let hash: Hash = b64()
                .decode(line)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| format!("proof line {} is not a base64 SHA-256 hash", n + 1))?;
            proof.push(hash);
        }
        let checkpoint = Note::parse(note).map_err(|e| format!("the proof's checkpoint: {e}"))?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// The proof as text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            out.push_str(&format!("extra {}\n", b64().encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.proof {
            out.push_str(&b64().encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.to_text());
        out
    }
}

/// The extra data of a patch's proof, as canonical JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProofExtra {
    /// The patch's `patch.published` entry, exactly as logged.
    pub entry: String,
    /// The minisign signature of the checkpoint's text, without its first line (the
    /// untrusted comment, which no signature covers): every byte of it counts.
    pub head_signature: String,
    /// The patches yanked within the checkpoint's tree, in log order.
    pub revocations: Vec<Revocation>,
}

impl ProofExtra {
    /// The extra data of a proof of `entry` in the head `head_signature` signs.
    pub fn new(entry: String, head_signature: &str, revocations: Vec<Revocation>) -> ProofExtra {
        let covered = match head_signature.split_once('\n') {
            Some((first, rest)) if first.starts_with("untrusted comment:") => rest,
            _ => head_signature,
        };
        ProofExtra {
            entry,
            head_signature: covered.to_owned(),
            revocations,
        }
    }

    /// The head's signature as minisign reads it.
    fn minisig(&self) -> String {
        format!("untrusted comment: a patchwarden log head\n{}", self.head_signature)
    }
}

/// A patch's proof, checked: the head it is in (signed by the vendor's key both as
/// minisign and as a note), the key that signed it, the publication entry and the
/// patches yanked within that head.
#[derive(Clone, Debug)]
pub struct ProvenPatch {
    pub patch_id: String,
    pub index: u64,
    pub entry: Entry,
    /// The entry exactly as logged.
    pub leaf: String,
    pub head: TreeHead,
    pub key_id: String,
    pub checkpoint: Note,
    pub revocations: Vec<Revocation>,
    /// The inclusion proof as hex hashes.
    pub proof: Vec<String>,
}

/// Checks a patch's proof with the keys `public_key` finds by key id: the head's
/// minisign signature and its trusted comment, the checkpoint's note signature by
/// the same key under the log's origin, the entry's inclusion in that head, that
/// the entry is a patch's publication, and that the yanked patches are the ones the
/// head commits to. Cosignatures are left to the caller's witness policy.
pub fn check_patch_proof(
    proof: &TlogProof,
    public_key: impl Fn(&str) -> Option<String>,
) -> Result<ProvenPatch, String> {
    let extra = proof
        .extra
        .as_deref()
        .ok_or_else(|| "the proof has no extra data: it is not the proof of a patch".to_owned())?;
    let extra: ProofExtra =
        serde_json::from_slice(extra).map_err(|e| format!("the proof's extra data is not a patch's: {e}"))?;
    let head_signature = extra.minisig();
    if !signing::is_canonical(&head_signature) {
        return Err("the checkpoint's signature is not written as minisign writes it".into());
    }
    let key_id = signing::signer_key_id(&head_signature)?;
    let key = public_key(&key_id)
        .ok_or_else(|| format!("the proof's checkpoint is signed by key {key_id}, which is not trusted"))?;
    let checkpoint = &proof.checkpoint;
    let verified = signing::verify(&key, std::io::Cursor::new(checkpoint.text.as_bytes()), &head_signature)
        .map_err(|e| format!("the checkpoint's signature does not verify: {e}"))?;
    let head = TreeHead::from_signed(&checkpoint.text, &verified.trusted_comment)?;
    if checkpoint.verified_by(&note_key(&head.origin, &key)?).is_none() {
        return Err("the checkpoint carries no note signature of the log's key".into());
    }
    verify_inclusion(
        proof.index,
        head.tree_size,
        &leaf_hash(extra.entry.as_bytes()),
        &proof.proof,
        &head.root_hash,
    )
    .map_err(|e| format!("entry {} is not in the checkpoint's tree: {e}", proof.index))?;
    let entry = Entry::parse(&extra.entry)?;
    let patch_id = match (
        entry.kind,
        entry.subject.as_deref().and_then(|s| s.strip_prefix("patch/")),
    ) {
        (Some(LogKind::PatchPublished), Some(id)) => id.to_owned(),
        _ => return Err(format!("entry {} is not the publication of a patch", proof.index)),
    };
    match head.revoked {
        Some(digest) if digest == revocations_digest(&extra.revocations) => {}
        Some(_) => return Err("the yanked patches the proof lists are not the ones its head commits to".into()),
        None => return Err("the proof's head commits to no list of yanked patches".into()),
    }
    Ok(ProvenPatch {
        patch_id,
        index: proof.index,
        entry,
        leaf: extra.entry,
        head,
        key_id: verified.key_id,
        checkpoint: checkpoint.clone(),
        revocations: extra.revocations,
        proof: proof.proof.iter().map(hex::encode).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::note::{NoteSigner, TYPE_ED25519};

    fn note() -> Note {
        let signer = NoteSigner::from_seed("example.com/log", TYPE_ED25519, &[5; 32]).unwrap();
        let text = format!("example.com/log\n3\n{}\n", b64().encode([9; 32]));
        Note {
            signatures: vec![signer.sign(&text)],
            text,
        }
    }

    #[test]
    fn a_proof_reads_back_from_its_text_with_and_without_extra_data() {
        let proof = TlogProof {
            extra: Some(b"{\"entry\":1}".to_vec()),
            index: 2,
            proof: vec![[1; 32], [2; 32]],
            checkpoint: note(),
        };
        let text = proof.to_text();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
        assert!(text.contains("\nindex 2\nAQEB"), "{text}");
        assert_eq!(TlogProof::parse(&text).unwrap(), proof);
        let bare = TlogProof {
            extra: None,
            index: 0,
            proof: Vec::new(),
            ..proof
        };
        let text = bare.to_text();
        assert!(
            text.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n\nexample.com/log\n"),
            "{text}"
        );
        assert_eq!(TlogProof::parse(&text).unwrap(), bare);
    }

    #[test]
    fn malformed_proofs_are_refused_naming_the_line() {
        let good = TlogProof {
            extra: None,
            index: 7,
            proof: vec![[1; 32]],
            checkpoint: note(),
        }
        .to_text();
        let cases = [
            (
                good.replace("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2"),
                "starts with",
            ),
            (good.replace("index 7", "index 07"), "leading zeroes"),
            (good.replace("index 7", "index -7"), "leading zeroes"),
            (good.replace("index 7\n", ""), "no `index` line"),
            (good.replace("index 7", "extra !!\nindex 7"), "not base64"),
            (
                good.replace("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", "AQEB"),
                "proof line 1",
            ),
            (good.replace("\n\nexample.com", "\nexample.com"), "proof line 2"),
            (good.replace("\n\n", "\n"), "a blank line"),
        ];
        for (text, expected) in cases {
            let err = TlogProof::parse(&text).unwrap_err();
            assert!(err.contains(expected), "{err} for {text}");
        }
    }
}
