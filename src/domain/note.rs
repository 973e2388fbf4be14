//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, and the
//! cosignatures witnesses add to checkpoints (c2sp.org/tlog-cosignature, version 1).
//!
//! A note is text that ends in a newline, a blank line, then one line per signature:
//! `— <key name> <base64 of the 4-byte key id and the signature>`. A key id is the
//! first four bytes of SHA-256 over the key name, a newline, the signature type byte
//! and the public key, so the same Ed25519 key has one id as a log's note key (type
//! 0x01) and another as a witness's cosigning key (type 0x04). A verifier key is
//! written `<name>+<hex id>+<base64 of the type byte and the public key>`.
//!
//! A cosignature signs `cosignature/v1\ntime <seconds>\n` followed by the checkpoint
//! body, and carries the time in its signature bytes: key id, 8-byte big-endian
//! time, 64-byte Ed25519 signature.

use std::fmt;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use sha2::{Digest, Sha256};

/// The signature type of an Ed25519 note signature.
pub const TYPE_ED25519: u8 = 0x01;
/// The signature type of a `tlog-cosignature/v1` witness cosignature.
pub const TYPE_COSIGNATURE_V1: u8 = 0x04;

/// Signature lines a note may carry; more is refused as a parser's defence.
const MAX_SIGNATURES: usize = 100;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The id of a key: the first four bytes of SHA-256(name, `\n`, type, public key).
pub fn key_id(name: &str, kind: u8, public: &[u8; 32]) -> [u8; 4] {
    let mut hash = Sha256::new();
    hash.update(name.as_bytes());
    hash.update(b"\n");
    hash.update([kind]);
    hash.update(public);
    let digest = hash.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// Whether `name` may name a key: non-empty, no `+`, no white space or Unicode
/// space, nothing unprintable.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c != '+' && !c.is_whitespace() && !c.is_control())
}

/// The message a `tlog-cosignature/v1` signs for `body` at `timestamp`.
pub fn cosigned_message(body: &str, timestamp: u64) -> Vec<u8> {
    let mut message = format!("cosignature/v1\ntime {timestamp}\n").into_bytes();
    message.extend_from_slice(body.as_bytes());
    message
}

/// A public key that checks note signatures (type 0x01) or cosignatures (0x04).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub kind: u8,
    pub public: [u8; 32],
    pub id: [u8; 4],
}

impl VerifierKey {
    pub fn new(name: &str, kind: u8, public: [u8; 32]) -> Result<VerifierKey, String> {
        if !valid_key_name(name) {
            return Err(format!(
                "`{name}` is not a key name (no `+`, spaces or control characters)"
            ));
        }
        Ok(VerifierKey {
            name: name.to_owned(),
            kind,
            id: key_id(name, kind, &public),
            public,
        })
    }

    /// Reads `<name>+<hex id>+<base64 type and key>`, checking that the id is the key's.
    pub fn parse(text: &str) -> Result<VerifierKey, String> {
        let text = text.trim();
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("`{text}` is not a verifier key (name+id+key)"));
        };
        let id = hex::decode(id)
            .ok()
            .filter(|id| id.len() == 4)
            .ok_or_else(|| format!("the verifier key's id `{id}` is not 8 hex digits"))?;
        let key = b64()
            .decode(key)
            .map_err(|_| "the verifier key's key is not base64".to_owned())?;
        let (&kind, public) = key
            .split_first()
            .ok_or_else(|| "the verifier key's key is empty".to_owned())?;
        if kind != TYPE_ED25519 && kind != TYPE_COSIGNATURE_V1 {
            return Err(format!(
                "the verifier key's type 0x{kind:02x} is neither Ed25519 (0x01) nor a cosignature (0x04)"
            ));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| "the verifier key's Ed25519 key is not 32 bytes".to_owned())?;
        let key = VerifierKey::new(name, kind, public)?;
        if key.id[..] != id[..] {
            return Err(format!(
                "the verifier key's id does not match its name and key ({name})"
            ));
        }
        Ok(key)
    }

    /// Whether `signature` (the bytes after the key id) is this key's over `text`;
    /// for a cosignature key, the time it carries.
    pub fn check(&self, text: &str, signature: &[u8]) -> Option<Option<u64>> {
        let key = UnparsedPublicKey::new(&ED25519, &self.public);
        match self.kind {
            TYPE_ED25519 => key.verify(text.as_bytes(), signature).ok().map(|()| None),
            TYPE_COSIGNATURE_V1 => {
                let (time, signature) = signature.split_at_checked(8)?;
                let timestamp = u64::from_be_bytes(time.try_into().ok()?);
                key.verify(&cosigned_message(text, timestamp), signature)
                    .ok()
                    .map(|()| Some(timestamp))
            }
            _ => None,
        }
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![self.kind];
        key.extend_from_slice(&self.public);
        write!(f, "{}+{}+{}", self.name, hex::encode(self.id), b64().encode(key))
    }
}

/// One signature line of a note.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: [u8; 4],
    /// What follows the key id: the signature (for a cosignature, time and signature).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line, with its newline.
    pub fn line(&self) -> String {
        let mut bytes = self.id.to_vec();
        bytes.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, b64().encode(bytes))
    }

    /// Reads one line (without its newline).
    pub fn parse(line: &str) -> Result<NoteSignature, String> {
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| "a signature line starts with an em dash and a space".to_owned())?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| "a signature line is a key name and a base64 signature".to_owned())?;
        if !valid_key_name(name) {
            return Err(format!("`{name}` is not a key name"));
        }
        let bytes = b64()
            .decode(encoded)
            .map_err(|_| format!("the signature of {name} is not base64"))?;
        if bytes.len() < 5 {
            return Err(format!("the signature of {name} is too short"));
        }
        let (id, signature) = bytes.split_at(4);
        Ok(NoteSignature {
            name: name.to_owned(),
            id: [id[0], id[1], id[2], id[3]],
            signature: signature.to_vec(),
        })
    }

    /// Whether this line is `key`'s and holds; for a cosignature, its time.
    pub fn verified_by(&self, key: &VerifierKey, text: &str) -> Option<Option<u64>> {
        (self.name == key.name && self.id == key.id)
            .then(|| key.check(text, &self.signature))
            .flatten()
    }
}

/// A signed note: its text and its signature lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Reads a note. The text is everything up to the last blank line, and ends in
    /// a newline; every line after it is a signature.
    pub fn parse(note: &str) -> Result<Note, String> {
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err("a note holds no control characters but newlines".into());
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| "a note is text, a blank line and signatures".to_owned())?;
        let (text, lines) = (&note[..split + 1], &note[split + 2..]);
        let lines = lines
            .strip_suffix('\n')
            .ok_or_else(|| "a note ends in a newline".to_owned())?;
        let signatures = lines
            .split('\n')
            .map(NoteSignature::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.len() > MAX_SIGNATURES {
            return Err(format!("a note carries at most {MAX_SIGNATURES} signatures"));
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note as text.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}\n", self.text);
        for signature in &self.signatures {
            out.push_str(&signature.line());
        }
        out
    }

    /// The first line of `key` that verifies; for a cosignature, with its time.
    pub fn verified_by(&self, key: &VerifierKey) -> Option<Option<u64>> {
        self.signatures.iter().find_map(|s| s.verified_by(key, &self.text))
    }

    /// Adds `signature` unless the note already has one by the same key.
    pub fn add(&mut self, signature: NoteSignature) {
        if !self
            .signatures
            .iter()
            .any(|s| s.name == signature.name && s.id == signature.id)
        {
            self.signatures.push(signature);
        }
    }
}

/// An Ed25519 key that signs notes or cosigns checkpoints under one name.
pub struct NoteSigner {
    key: VerifierKey,
    pair: Ed25519KeyPair,
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("key", &self.key.to_string())
            .finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// The signer of `kind` named `name` for the Ed25519 key with this 32-byte seed.
    pub fn from_seed(name: &str, kind: u8, seed: &[u8; 32]) -> Result<NoteSigner, String> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|e| format!("not an Ed25519 seed: {e}"))?;
        let public: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
        Ok(NoteSigner {
            key: VerifierKey::new(name, kind, public)?,
            pair,
        })
    }

    /// The key that checks what this signer signs.
    pub fn verifier(&self) -> &VerifierKey {
        &self.key
    }

    /// A note signature over `text` (which ends in a newline).
    pub fn sign(&self, text: &str) -> NoteSignature {
        NoteSignature {
            name: self.key.name.clone(),
            id: self.key.id,
            signature: self.pair.sign(text.as_bytes()).as_ref().to_vec(),
        }
    }

    /// A `tlog-cosignature/v1` of the checkpoint `body` at `timestamp`.
    pub fn cosign(&self, body: &str, timestamp: u64) -> NoteSignature {
        let mut signature = timestamp.to_be_bytes().to_vec();
        signature.extend_from_slice(self.pair.sign(&cosigned_message(body, timestamp)).as_ref());
        NoteSignature {
            name: self.key.name.clone(),
            id: self.key.id,
            signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(kind: u8) -> NoteSigner {
        NoteSigner::from_seed("example.com/log", kind, &[7u8; 32]).unwrap()
    }

    #[test]
    fn a_signed_note_reads_back_and_verifies_and_a_changed_byte_does_not() {
        let signer = signer(TYPE_ED25519);
        let text = "example.com/log\n4\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let note = Note {
            text: text.into(),
            signatures: vec![signer.sign(text)],
        };
        let written = note.to_text();
        assert!(written.starts_with(text) && written.contains("\n\n\u{2014} example.com/log "));
        let read = Note::parse(&written).unwrap();
        assert_eq!(read, note);
        let key = VerifierKey::parse(&signer.verifier().to_string()).unwrap();
        assert_eq!(read.verified_by(&key), Some(None));
        let forged = Note::parse(&written.replacen("\n4\n", "\n5\n", 1)).unwrap();
        assert_eq!(forged.verified_by(&key), None);
    }

    #[test]
    fn a_cosignature_carries_its_time_and_binds_it() {
        let witness = signer(TYPE_COSIGNATURE_V1);
        let body = "example.com/log\n4\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let line = witness.cosign(body, 1_700_000_000);
        assert_eq!(line.signature.len(), 72);
        assert_eq!(line.verified_by(witness.verifier(), body), Some(Some(1_700_000_000)));
        let mut later = line.clone();
        later.signature[7] ^= 1;
        assert_eq!(later.verified_by(witness.verifier(), body), None, "the time is signed");
        // The same seed as a note key has another id: the two never stand in for each other.
        assert_ne!(signer(TYPE_ED25519).verifier().id, witness.verifier().id);
        assert_eq!(line.verified_by(signer(TYPE_ED25519).verifier(), body), None);
    }

    #[test]
    fn malformed_notes_and_keys_are_refused_with_what_is_wrong() {
        for (note, why) in [
            ("no blank line\n\u{2014} a AAAAAAAA\n", "blank line"),
            ("text\n\n\u{2014} a AAAAAAAA", "ends in a newline"),
            ("text\n\n- a AAAAAAAA\n", "em dash"),
            ("text\n\n\u{2014} a !!!\n", "base64"),
            ("text\n\n\u{2014} a AAA=\n", "too short"),
            ("te\rxt\n\n\u{2014} a AAAAAAAA\n", "control"),
        ] {
            let err = Note::parse(note).unwrap_err();
            assert!(err.contains(why), "{note:?}: {err}");
        }
        let key = signer(TYPE_ED25519).verifier().to_string();
        let (name, rest) = key.split_once('+').unwrap();
        let (_, encoded) = rest.split_once('+').unwrap();
        for (text, why) in [
            (format!("{name}+00000000+{encoded}"), "does not match"),
            (format!("{name}+0000+{encoded}"), "8 hex digits"),
            (name.to_string(), "not a verifier key"),
            (format!("a b+00000000+{encoded}"), "not a key name"),
        ] {
            let err = VerifierKey::parse(&text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
