//! minisign (Ed25519) keys, signatures and verification. The active key pair lives in
//! `keys/patchwarden.key` and `keys/patchwarden.pub`; a rotation moves the old pair to
//! `keys/retired/` and writes a statement, signed by the old key, that introduces the
//! new one. Signatures are the stock minisign format (prehashed, with a trusted
//! comment), so anyone can check them with the `minisign` command-line tool.

use std::fmt;
use std::fs;
use std::io::{Cursor, Read, Seek};
use std::path::Path;

use anyhow::{bail, Context};
use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};

/// File name of the active secret key inside the keys directory.
pub const SECRET_KEY_FILE: &str = "patchwarden.key";
/// File name of the active public key inside the keys directory.
pub const PUBLIC_KEY_FILE: &str = "patchwarden.pub";

/// The minisign key id of a public key, as minisign prints it (16 hex digits).
fn key_id_of(keynum: &[u8]) -> String {
    let mut id = [0u8; 8];
    id.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(id))
}

/// A public key with its id and the `.pub` text minisign reads.
#[derive(Clone, Debug)]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub text: String,
}

impl PublicKeyInfo {
    pub fn parse(text: &str) -> Result<Self, String> {
        let key = PublicKeyBox::from_string(text)
            .and_then(PublicKeyBox::into_public_key)
            .map_err(|e| format!("not a minisign public key: {e}"))?;
        Ok(PublicKeyInfo {
            key_id: key_id_of(key.keynum()),
            text: text.to_owned(),
        })
    }
}

/// One signing key of `GET /api/v1/keys`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyResponse {
    pub key_id: String,
    pub public_key: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_statement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_signature: Option<String>,
}

/// The key that signs what this server publishes.
pub struct Signer {
    public: PublicKey,
    secret: SecretKey,
    info: PublicKeyInfo,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.info.key_id)
            .finish_non_exhaustive()
    }
}

/// What a good signature says: who signed, and the trusted comment it carries.
/// Only [`verify`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedSignature {
    pub key_id: String,
    pub trusted_comment: String,
}

impl Signer {
    fn from_pair(public: PublicKey, secret: SecretKey) -> anyhow::Result<Self> {
        let text = public.to_box().context("encoding the public key")?.into_string();
        let key_id = key_id_of(public.keynum());
        Ok(Signer {
            public,
            secret,
            info: PublicKeyInfo { key_id, text },
        })
    }

    /// Loads the active key pair from `dir`. An encrypted key needs `password`.
    pub fn load(dir: &Path, password: Option<String>) -> anyhow::Result<Self> {
        let secret_path = dir.join(SECRET_KEY_FILE);
        let public_path = dir.join(PUBLIC_KEY_FILE);
        let secret_text =
            fs::read_to_string(&secret_path).with_context(|| format!("reading {}", secret_path.display()))?;
        let public_text =
            fs::read_to_string(&public_path).with_context(|| format!("reading {}", public_path.display()))?;
        let secret =
            open_secret(&secret_text, password).with_context(|| format!("opening {}", secret_path.display()))?;
        let public = PublicKeyBox::from_string(&public_text)
            .and_then(PublicKeyBox::into_public_key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", public_path.display()))?;
        if public.keynum() != secret.keynum() {
            bail!("{} does not belong to {}", public_path.display(), secret_path.display());
        }
        Self::from_pair(public, secret)
    }

    /// Whether `dir` holds an active key.
    pub fn exists(dir: &Path) -> bool {
        dir.join(SECRET_KEY_FILE).exists()
    }

    /// Generates a key pair in `dir`: encrypted with `password`, or unencrypted when
    /// `None`. Refuses to overwrite an existing key.
    pub fn generate(dir: &Path, password: Option<String>) -> anyhow::Result<Self> {
        if Self::exists(dir) {
            bail!(
                "{} already exists; rotate it instead of overwriting it",
                dir.join(SECRET_KEY_FILE).display()
            );
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let encrypted = password.is_some();
        let KeyPair { pk, sk } = match password.clone() {
            Some(password) => KeyPair::generate_encrypted_keypair(Some(password)),
            None => KeyPair::generate_unencrypted_keypair(),
        }
        .map_err(|e| anyhow::anyhow!("generating a key pair: {e}"))?;
        let comment = if encrypted {
            "patchwarden signing key (encrypted)"
        } else {
            "patchwarden signing key (UNENCRYPTED)"
        };
        let secret_text = sk
            .to_box(Some(comment))
            .map_err(|e| anyhow::anyhow!("encoding the secret key: {e}"))?
            .into_string();
        write_private(&dir.join(SECRET_KEY_FILE), secret_text.as_bytes())?;
        let public_text = pk
            .to_box()
            .map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))?
            .into_string();
        fs::write(dir.join(PUBLIC_KEY_FILE), public_text).context("writing the public key")?;
        // An encrypted key comes back encrypted; open it as a later start would.
        let secret = open_secret(&secret_text, password)?;
        Self::from_pair(pk, secret)
    }

    pub fn key_id(&self) -> &str {
        &self.info.key_id
    }

    pub fn public_key(&self) -> &PublicKeyInfo {
        &self.info
    }

    /// The Ed25519 seed of the key pair and its public key: what signs the log's
    /// C2SP notes, so a rotation that introduces a new minisign key introduces its
    /// note key too.
    pub fn ed25519_pair(&self) -> anyhow::Result<([u8; 32], [u8; 32])> {
        // The unencrypted secret key's bytes: algorithms and KDF parameters (54
        // bytes), the key number (8), then the Ed25519 seed and public key (64).
        let bytes = self.secret.to_bytes();
        let seed: [u8; 32] = bytes
            .get(62..94)
            .and_then(|s| s.try_into().ok())
            .context("the secret key is shorter than a minisign key")?;
        Ok((seed, ed25519_public(&self.public)?))
    }

    /// Signs bytes; returns the `.minisig` text.
    pub fn sign(&self, data: &[u8], trusted_comment: &str) -> anyhow::Result<String> {
        self.sign_reader(Cursor::new(data), trusted_comment)
    }

    /// Signs everything `reader` yields; returns the `.minisig` text.
    pub fn sign_reader(&self, reader: impl Read, trusted_comment: &str) -> anyhow::Result<String> {
        if trusted_comment.contains('\n') {
            bail!("a trusted comment is one line");
        }
        let untrusted = format!("signature from patchwarden key {}", self.info.key_id);
        let signature = minisign::sign(
            Some(&self.public),
            &self.secret,
            reader,
            Some(trusted_comment),
            Some(&untrusted),
        )
        .map_err(|e| anyhow::anyhow!("signing: {e}"))?;
        Ok(signature.into_string())
    }
}

/// The raw Ed25519 key of a minisign public key.
fn ed25519_public(key: &PublicKey) -> anyhow::Result<[u8; 32]> {
    // Algorithm (2 bytes), key number (8), then the Ed25519 key.
    key.to_bytes()
        .get(10..42)
        .and_then(|k| k.try_into().ok())
        .context("a minisign public key holds a 32-byte Ed25519 key")
}

/// The raw Ed25519 key of a minisign `.pub` text: what a note verifier key of the
/// same key holds.
pub fn ed25519_public_of(text: &str) -> Result<[u8; 32], String> {
    let key = PublicKeyBox::from_string(text)
        .and_then(PublicKeyBox::into_public_key)
        .map_err(|e| format!("not a minisign public key: {e}"))?;
    ed25519_public(&key).map_err(|e| e.to_string())
}

fn open_secret(text: &str, password: Option<String>) -> anyhow::Result<SecretKey> {
    let secret_box = SecretKeyBox::from_string(text).map_err(|e| anyhow::anyhow!("not a minisign secret key: {e}"))?;
    match password {
        Some(password) => match secret_box.clone().into_secret_key(Some(password)) {
            Ok(key) => Ok(key),
            Err(err) if err.to_string().contains("not encrypted") => {
                tracing::warn!("a key password is configured but the signing key is not encrypted");
                secret_box
                    .into_unencrypted_secret_key()
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
            Err(err) => Err(anyhow::anyhow!(
                "{err} (check PATCHWARDEN_KEY_PASSWORD or key_password_file)"
            )),
        },
        None => secret_box.into_unencrypted_secret_key().map_err(|e| {
            anyhow::anyhow!("{e}: the key is encrypted; set PATCHWARDEN_KEY_PASSWORD or the key_password_file setting")
        }),
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", path.display()))
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The id of the key that made `signature_text`, read before anything is verified so
/// that the right public key can be chosen.
pub fn signer_key_id(signature_text: &str) -> Result<String, String> {
    let signature = SignatureBox::from_string(signature_text).map_err(|e| format!("not a minisign signature: {e}"))?;
    Ok(key_id_of(signature.keynum()))
}

/// Whether `signature_text` is written exactly as minisign writes a signature:
/// its reader tolerates other spellings of the same signature (spaces, line ends,
/// base64 padding), which a text whose every byte counts must not have.
pub fn is_canonical(signature_text: &str) -> bool {
    SignatureBox::from_string(signature_text).is_ok_and(|signature| signature.to_string() == signature_text)
}

/// Checks `signature_text` over `data` with `public_key_text`.
pub fn verify(
    public_key_text: &str,
    data: impl Read + Seek,
    signature_text: &str,
) -> Result<VerifiedSignature, String> {
    let public = PublicKeyBox::from_string(public_key_text)
        .and_then(PublicKeyBox::into_public_key)
        .map_err(|e| format!("not a minisign public key: {e}"))?;
    let signature = SignatureBox::from_string(signature_text).map_err(|e| format!("not a minisign signature: {e}"))?;
    minisign::verify(&public, &signature, data, true, false, false).map_err(|e| format!("{e}"))?;
    let trusted_comment = signature.trusted_comment().map_err(|e| format!("{e}"))?;
    Ok(VerifiedSignature {
        key_id: key_id_of(public.keynum()),
        trusted_comment,
    })
}

/// A statement, signed by the outgoing key, that introduces its successor.
#[derive(Clone, Debug)]
pub struct Rotation {
    pub old_key_id: String,
    pub new_key: PublicKeyInfo,
    pub statement: String,
    pub signature: String,
}

/// The line of a rotation statement that declares the old key compromised.
const COMPROMISED_LINE: &str =
    "old key compromised: nothing it signs for a log of more than this many entries counts: ";

/// The text the old key signs when it hands over to the new one. A rotation forced
/// by a leak declares the old key compromised after `compromised_after` log entries:
/// heads, patches and advisories it signs past that point are refused, what it
/// signed before stays good.
pub fn rotation_statement(
    old_key_id: &str,
    new_key: &PublicKeyInfo,
    at: &str,
    compromised_after: Option<u64>,
) -> String {
    let compromised = compromised_after
        .map(|size| format!("{COMPROMISED_LINE}{size}\n"))
        .unwrap_or_default();
    format!(
        "patchwarden signing key rotation\nold key: {old_key_id}\nnew key: {}\ndate: {at}\n{compromised}new public key:\n{}",
        new_key.key_id, new_key.text
    )
}

/// The trusted comment of a rotation statement's signature.
pub fn rotation_comment(old_key_id: &str, new_key_id: &str, compromised_after: Option<u64>) -> String {
    let compromised = compromised_after
        .map(|size| format!(" compromised_after={size}"))
        .unwrap_or_default();
    format!("patchwarden-key-rotation old={old_key_id} new={new_key_id}{compromised}")
}

/// What a verified rotation comment says of the old key: `Ok(None)` for a routine
/// rotation, `Ok(Some(size))` when it declares the old key compromised after `size`
/// log entries; an error when it is not the rotation from `old` to `new`.
pub fn rotation_compromise(comment: &str, old_key_id: &str, new_key_id: &str) -> Result<Option<u64>, String> {
    let routine = rotation_comment(old_key_id, new_key_id, None);
    match comment.strip_prefix(&routine) {
        Some("") => Ok(None),
        Some(rest) => rest
            .strip_prefix(" compromised_after=")
            .and_then(|size| size.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("the rotation statement's trusted comment is `{comment}`")),
        None => Err(format!("the rotation statement's trusted comment is `{comment}`")),
    }
}

/// The log size after which a rotation statement declares its old key compromised.
pub fn statement_compromised_after(statement: &str) -> Option<u64> {
    statement
        .lines()
        .find_map(|line| line.strip_prefix(COMPROMISED_LINE))
        .and_then(|size| size.parse().ok())
}

/// Replaces the active key in `dir` with a new one. The new pair is made aside, the
/// old key signs a statement introducing it (written as `rotation-<NEW ID>.txt` and
/// `.minisig`), the old public key is kept as `dir/retired/<KEY ID>.pub` so its
/// signatures stay verifiable, and the new pair then replaces the old one: the old
/// secret key is gone, so a stolen backup of the directory cannot sign any more.
///
/// With `compromised_after`, the statement declares the old key compromised after
/// that many log entries (the log's size when the leak was found).
pub fn rotate(
    dir: &Path,
    old_password: Option<String>,
    new_password: Option<String>,
    at: &str,
    compromised_after: Option<u64>,
) -> anyhow::Result<(Signer, Rotation)> {
    let old = Signer::load(dir, old_password).context("loading the current key")?;
    let staging = dir.join(".rotating");
    if staging.exists() {
        fs::remove_dir_all(&staging).with_context(|| format!("removing {}", staging.display()))?;
    }
    let new = Signer::generate(&staging, new_password)?;
    let statement = rotation_statement(old.key_id(), new.public_key(), at, compromised_after);
    let comment = rotation_comment(old.key_id(), new.key_id(), compromised_after);
    let signature = old.sign(statement.as_bytes(), &comment)?;
    fs::write(dir.join(format!("rotation-{}.txt", new.key_id())), &statement)
        .context("writing the rotation statement")?;
    fs::write(dir.join(format!("rotation-{}.txt.minisig", new.key_id())), &signature)
        .context("writing the rotation signature")?;
    let retired = dir.join("retired");
    fs::create_dir_all(&retired).with_context(|| format!("creating {}", retired.display()))?;
    let old_public = retired.join(format!("{}.pub", old.key_id()));
    fs::copy(dir.join(PUBLIC_KEY_FILE), &old_public)
        .with_context(|| format!("keeping the old public key as {}", old_public.display()))?;
    for name in [PUBLIC_KEY_FILE, SECRET_KEY_FILE] {
        let (from, to) = (staging.join(name), dir.join(name));
        fs::rename(&from, &to).with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    }
    fs::remove_dir(&staging).with_context(|| format!("removing {}", staging.display()))?;
    let rotation = Rotation {
        old_key_id: old.key_id().to_owned(),
        new_key: new.public_key().clone(),
        statement,
        signature,
    };
    Ok((new, rotation))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_with_trusted_comment() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate(dir.path(), None).unwrap();
        let sig = signer.sign(b"advisory bytes", "id=PW-2026-0001 revision=1").unwrap();
        let verified = verify(&signer.public_key().text, Cursor::new(b"advisory bytes"), &sig).unwrap();
        assert_eq!(verified.trusted_comment, "id=PW-2026-0001 revision=1");
        assert_eq!(verified.key_id, signer.key_id());
        assert!(verify(&signer.public_key().text, Cursor::new(b"advisory byteS"), &sig).is_err());

        let reloaded = Signer::load(dir.path(), None).unwrap();
        assert_eq!(reloaded.key_id(), signer.key_id());
        assert!(
            Signer::generate(dir.path(), None).is_err(),
            "an existing key must not be overwritten"
        );
    }

    #[test]
    fn only_the_text_minisign_writes_is_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate(dir.path(), None).unwrap();
        let signature = signer.sign(b"data", "a comment").unwrap();
        assert!(is_canonical(&signature));
        // The same signature spelled otherwise still verifies, but is not canonical.
        let spaced = signature.replacen("\ntrusted comment", " \ntrusted comment", 1);
        let crlf = signature.replace('\n', "\r\n");
        let padding = signature.replacen("=\ntrusted comment", "A\ntrusted comment", 1);
        assert_ne!(padding, signature, "a 74-byte signature's base64 ends in one `=`");
        for other in [spaced, crlf, padding, format!("{signature}\n")] {
            assert!(verify(&signer.public_key().text, Cursor::new(b"data"), &other).is_ok());
            assert!(!is_canonical(&other), "{other:?}");
        }
        assert!(!is_canonical("not a signature"));
    }

    #[test]
    fn a_forged_trusted_comment_fails() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::generate(dir.path(), None).unwrap();
        let sig = signer.sign(b"data", "revision=1").unwrap();
        let lines: Vec<&str> = sig.lines().collect();
        let forged = format!(
            "{}\n{}\ntrusted comment: revision=2\n{}\n",
            lines[0], lines[1], lines[3]
        );
        assert!(verify(&signer.public_key().text, Cursor::new(b"data"), &forged).is_err());
    }

    #[test]
    fn rotation_is_signed_by_the_old_key_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = Signer::generate(dir.path(), None).unwrap();
        let old_public = old.public_key().text.clone();
        let (new, rotation) = rotate(dir.path(), None, None, "2026-11-28T00:00:00Z", None).unwrap();
        assert_ne!(new.key_id(), old.key_id());
        let verified = verify(
            &old_public,
            Cursor::new(rotation.statement.as_bytes()),
            &rotation.signature,
        )
        .unwrap();
        assert!(verified.trusted_comment.contains(new.key_id()));
        assert!(rotation.statement.contains(&new.public_key().text));
        assert!(dir.path().join(format!("retired/{}.pub", old.key_id())).is_file());
        let left: Vec<String> = std::fs::read_dir(dir.path().join("retired"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            left,
            [format!("{}.pub", old.key_id())],
            "a retired secret key stayed on disk"
        );
        assert!(!dir.path().join(".rotating").exists());
        assert_eq!(Signer::load(dir.path(), None).unwrap().key_id(), new.key_id());
        assert_eq!(
            rotation_compromise(&verified.trusted_comment, old.key_id(), new.key_id()),
            Ok(None)
        );
        assert_eq!(statement_compromised_after(&rotation.statement), None);

        // A rotation forced by a leak says so, in the statement and in its signature.
        let (third, leaked) = rotate(dir.path(), None, None, "2026-11-29T00:00:00Z", Some(42)).unwrap();
        let verified = verify(
            &new.public_key().text,
            Cursor::new(leaked.statement.as_bytes()),
            &leaked.signature,
        )
        .unwrap();
        assert_eq!(
            rotation_compromise(&verified.trusted_comment, new.key_id(), third.key_id()),
            Ok(Some(42))
        );
        assert_eq!(statement_compromised_after(&leaked.statement), Some(42));
        assert!(rotation_compromise(&verified.trusted_comment, new.key_id(), old.key_id()).is_err());
        assert!(rotation_compromise(
            &format!("{} extra", verified.trusted_comment),
            new.key_id(),
            third.key_id()
        )
        .is_err());
    }
}
