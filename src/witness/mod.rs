//! A witness (C2SP `tlog-witness`): it cosigns a log's checkpoint only when a
//! consistency proof shows the checkpoint extends the one it cosigned before, so a
//! log that shows one party a history others do not see cannot get that fork
//! cosigned by a witness that saw the other branch. It needs no database: what it
//! cosigned last per log is a local file, written and synced before it answers
//! ([`store`]), and it answers over HTTP ([`serve`]).
//!
//! `POST /add-checkpoint` takes `old <size>`, the consistency proof from that size
//! (one base64 hash per line), a blank line and the checkpoint as a signed note.
//! It answers 200 with its `tlog-cosignature/v1` line; 409 (`text/x.tlog.size`,
//! the size it holds) when `old` is not that size; 404 for a log it does not know;
//! 403 when no signature of the log's key verifies; 422 when the proof does not
//! show the checkpoint extends the one it holds; 400 when the request cannot be read.

pub mod serve;
pub mod store;

use std::collections::HashMap;

use base64::Engine;

use crate::domain::merkle::{verify_consistency, Hash};
use crate::domain::note::{Note, NoteSigner, VerifierKey, TYPE_ED25519};

use store::{Cosigned, StateFile};

/// Consistency proof lines a request may carry: a proof is at most 63 hashes for
/// any tree a 64-bit size can name.
const MAX_PROOF: usize = 63;
/// The largest request read.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Why a checkpoint was not cosigned.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// 400: the request cannot be read.
    #[error("{0}")]
    Malformed(String),
    /// 404: a log this witness does not witness.
    #[error("this witness does not know the log `{0}`")]
    UnknownLog(String),
    /// 403: no signature of the log's key verifies.
    #[error("no signature of the log's key verifies")]
    BadSignature,
    /// 409: `old` is not the size of the checkpoint cosigned last, which is this.
    #[error("the latest cosigned checkpoint has size {0}")]
    Conflict(u64),
    /// 422: the proof does not show the checkpoint extends the one cosigned last.
    #[error("{0}")]
    BadProof(String),
    /// 500: the state could not be written, so nothing was cosigned.
    #[error("the witness could not record the checkpoint: {0}")]
    Storage(String),
}

/// A checkpoint's body: origin, size and root hash (extension lines are cosigned
/// with it but not read).
#[derive(Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

impl Checkpoint {
    pub fn parse(body: &str) -> Result<Checkpoint, String> {
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err("a checkpoint is an origin, a size and a root hash, one per line".into());
        };
        if origin.is_empty() {
            return Err("the checkpoint's origin is empty".into());
        }
        let size = size
            .parse::<u64>()
            .ok()
            .filter(|_| !size.starts_with('+') && (size == "0" || !size.starts_with('0')))
            .ok_or_else(|| format!("the checkpoint's size `{size}` is not a decimal number"))?;
        let root = base64::engine::general_purpose::STANDARD
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or_else(|| "the checkpoint's root hash is not 32 bytes of base64".to_owned())?;
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
        })
    }
}

/// A request to `POST /add-checkpoint`, read.
#[derive(Debug)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    pub note: Note,
    pub checkpoint: Checkpoint,
}

impl AddCheckpoint {
    /// The request as a log sends it: `old <size>`, the proof's hashes in base64,
    /// a blank line and the signed checkpoint.
    pub fn body(old: u64, proof: &[Hash], note: &Note) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut body = format!("old {old}\n");
        for hash in proof {
            body.push_str(&b64.encode(hash));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&note.to_text());
        body
    }

    pub fn parse(body: &str) -> Result<AddCheckpoint, Refused> {
        let malformed = |why: &str| Refused::Malformed(why.to_owned());
        let (head, note) = body
            .split_once("\n\n")
            .ok_or_else(|| malformed("the request is `old <size>`, proof lines, a blank line and the checkpoint"))?;
        let mut lines = head.split('\n');
        let old = lines
            .next()
            .and_then(|l| l.strip_prefix("old "))
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(|| malformed("the request starts with `old <size>`"))?;
        let proof = lines
            .map(|line| {
                base64::engine::general_purpose::STANDARD
                    .decode(line)
                    .ok()
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or_else(|| Refused::Malformed(format!("the proof line `{line}` is not a base64 hash")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() > MAX_PROOF {
            return Err(malformed("a consistency proof has at most 63 hashes"));
        }
        let note =
            Note::parse(note).map_err(|e| Refused::Malformed(format!("the checkpoint is not a signed note: {e}")))?;
        let checkpoint = Checkpoint::parse(&note.text).map_err(Refused::Malformed)?;
        Ok(AddCheckpoint {
            old,
            proof,
            note,
            checkpoint,
        })
    }
}

/// A witness: its key, the logs it witnesses and what it cosigned for each.
pub struct Witness {
    signer: NoteSigner,
    logs: HashMap<String, Vec<VerifierKey>>,
    state: std::sync::Mutex<StateFile>,
}

impl Witness {
    /// A witness cosigning with `signer` for the logs whose note keys are `logs`
    /// (named by their origins), keeping its state in `state`.
    pub fn new(signer: NoteSigner, logs: Vec<VerifierKey>, state: StateFile) -> Result<Witness, String> {
        let mut by_origin: HashMap<String, Vec<VerifierKey>> = HashMap::new();
        for key in logs {
            if key.kind != TYPE_ED25519 {
                return Err(format!("{key} is not an Ed25519 note key"));
            }
            by_origin.entry(key.name.clone()).or_default().push(key);
        }
        Ok(Witness {
            signer,
            logs: by_origin,
            state: std::sync::Mutex::new(state),
        })
    }

    /// The key that checks this witness's cosignatures.
    pub fn verifier(&self) -> &VerifierKey {
        self.signer.verifier()
    }

    /// Checks `body`, records the checkpoint durably, and returns the cosignature
    /// line made at `now` (Unix seconds). One request at a time: the check and the
    /// write are one step.
    pub fn add_checkpoint(&self, body: &str, now: u64) -> Result<String, Refused> {
        let request = AddCheckpoint::parse(body)?;
        let checkpoint = &request.checkpoint;
        let keys = self
            .logs
            .get(&checkpoint.origin)
            .ok_or_else(|| Refused::UnknownLog(checkpoint.origin.clone()))?;
        if !keys.iter().any(|key| request.note.verified_by(key).is_some()) {
            return Err(Refused::BadSignature);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let held = state.get(&checkpoint.origin);
        let held_size = held.as_ref().map_or(0, |h| h.size);
        if request.old != held_size {
            return Err(Refused::Conflict(held_size));
        }
        if checkpoint.size < request.old {
            return Err(Refused::Malformed(format!(
                "the checkpoint's size {} is below old {}",
                checkpoint.size, request.old
            )));
        }
        match &held {
            None if !request.proof.is_empty() => {
                return Err(Refused::BadProof(
                    "there is nothing to prove consistency with: the proof must be empty".into(),
                ))
            }
            None => {}
            Some(held) => verify_consistency(held.size, checkpoint.size, &held.root, &checkpoint.root, &request.proof)
                .map_err(|e| {
                    Refused::BadProof(format!(
                        "the checkpoint does not extend the one of size {} cosigned before: {e}",
                        held.size
                    ))
                })?,
        }
        state
            .record(
                &checkpoint.origin,
                Cosigned {
                    size: checkpoint.size,
                    root: checkpoint.root,
                },
            )
            .map_err(|e| Refused::Storage(format!("{e:#}")))?;
        Ok(self.signer.cosign(&request.note.text, now).line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::merkle::{leaf_hash, Frontier};
    use crate::domain::note::TYPE_COSIGNATURE_V1;

    const ORIGIN: &str = "example.com/log";

    fn log_key() -> NoteSigner {
        NoteSigner::from_seed(ORIGIN, TYPE_ED25519, &[1; 32]).unwrap()
    }

    fn witness(dir: &std::path::Path) -> Witness {
        let signer = NoteSigner::from_seed("w1", TYPE_COSIGNATURE_V1, &[2; 32]).unwrap();
        let state = StateFile::open(&dir.join("state.json")).unwrap();
        Witness::new(signer, vec![log_key().verifier().clone()], state).unwrap()
    }

    /// Roots of trees of 0..=n leaves, and the leaves.
    fn tree(n: u64) -> (Vec<Hash>, Vec<Hash>) {
        let leaves: Vec<Hash> = (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect();
        let mut roots = vec![Frontier::default().root()];
        let mut frontier = Frontier::default();
        for leaf in &leaves {
            frontier.push(*leaf);
            roots.push(frontier.root());
        }
        (roots, leaves)
    }

    fn request(old: u64, proof: &[Hash], size: u64, root: &Hash, signer: &NoteSigner) -> String {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = format!("{ORIGIN}\n{size}\n{}\n", b64.encode(root));
        let note = Note {
            signatures: vec![signer.sign(&body)],
            text: body,
        };
        AddCheckpoint::body(old, proof, &note)
    }

    #[test]
    fn it_cosigns_a_growing_log_and_refuses_a_fork_a_stale_old_and_strangers() {
        let dir = tempfile::tempdir().unwrap();
        let w = witness(dir.path());
        let (roots, _) = tree(9);
        let key = log_key();
        let line = w
            .add_checkpoint(&request(0, &[], 4, &roots[4], &key), 1_700_000_000)
            .unwrap();
        let body = format!(
            "{ORIGIN}\n4\n{}\n",
            base64::engine::general_purpose::STANDARD.encode(roots[4])
        );
        let signature = crate::domain::note::NoteSignature::parse(line.trim_end()).unwrap();
        assert_eq!(signature.verified_by(w.verifier(), &body), Some(Some(1_700_000_000)));
        // The witness remembers size 4: old 0 again is a conflict naming 4.
        assert_eq!(
            w.add_checkpoint(&request(0, &[], 9, &roots[9], &key), 1).unwrap_err(),
            Refused::Conflict(4)
        );
        // Grown to 9 with the proof from 4: cosigned, and 9 is held from now on.
        let (_, leaves) = tree(9);
        let subtree = |n: crate::domain::merkle::Node| {
            let mut f = Frontier::default();
            let start = (n.index << n.level) as usize;
            leaves[start..start + (1usize << n.level)].iter().for_each(|l| {
                f.push(*l);
            });
            Some(f.root())
        };
        let proof = crate::domain::merkle::consistency_plan(4, 9)
            .unwrap()
            .resolve(subtree)
            .unwrap();
        assert!(w.add_checkpoint(&request(4, &proof, 9, &roots[9], &key), 2).is_ok());
        assert_eq!(
            w.add_checkpoint(&request(4, &proof, 9, &roots[9], &key), 3)
                .unwrap_err(),
            Refused::Conflict(9)
        );
        // A fork at size 9 (another root) has no proof from the root it holds.
        let forked = leaf_hash(b"a malicious patch");
        assert!(matches!(
            w.add_checkpoint(&request(9, &[], 9, &forked, &key), 1).unwrap_err(),
            Refused::BadProof(_)
        ));
        // Another key, another log.
        let stranger = NoteSigner::from_seed(ORIGIN, TYPE_ED25519, &[3; 32]).unwrap();
        assert_eq!(
            w.add_checkpoint(&request(9, &[], 9, &roots[9], &stranger), 1)
                .unwrap_err(),
            Refused::BadSignature
        );
        let other = NoteSigner::from_seed("other.example/log", TYPE_ED25519, &[1; 32]).unwrap();
        let body = request(9, &[], 9, &roots[9], &other).replace(ORIGIN, "other.example/log");
        assert!(matches!(
            w.add_checkpoint(&body, 1).unwrap_err(),
            Refused::UnknownLog(_)
        ));
        assert!(matches!(
            w.add_checkpoint("old x\n\nnot a note", 1).unwrap_err(),
            Refused::Malformed(_)
        ));
        // And a state read back after a restart holds size 9 still.
        drop(w);
        let w = witness(dir.path());
        assert_eq!(
            w.add_checkpoint(&request(0, &[], 4, &roots[4], &key), 1).unwrap_err(),
            Refused::Conflict(9)
        );
        // The same size and root again is cosigned again.
        assert!(w.add_checkpoint(&request(9, &[], 9, &roots[9], &key), 2).is_ok());
    }
}
