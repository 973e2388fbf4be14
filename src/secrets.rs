//! Secrets at rest and in transit: random tokens (API tokens, session cookies, CSRF
//! tokens), their SHA-256 digests, constant-time comparison, and argon2id password
//! hashes. Nothing in this module logs, and no type here prints a secret in `Debug`.

use std::fmt;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::random::{fill, SecureRng as OsRng};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::NewPassword;

/// Bytes of a token secret's SHA-256 kept in memory to recognise it: a guess
/// matches sixteen bytes once in 2^128 tries. The database keeps the whole digest.
pub const DIGEST_PREFIX: usize = 16;

/// Prefix of API tokens: `pwt_<lookup>_<secret>`.
pub const API_TOKEN_PREFIX: &str = "pwt";
/// Prefix of session cookie values: `pws_<lookup>_<secret>`.
pub const SESSION_PREFIX: &str = "pws";
/// Prefix of enrolment tokens: `pwe_<lookup>_<secret>`.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "pwe";

/// `n` bytes from the operating system's CSPRNG, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    fill(&mut bytes);
    hex::encode(bytes)
}

/// Lower-case hex SHA-256 of `data`.
pub use crate::domain::log::sha256_hex;

/// Compares two strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A bearer credential in two parts: a public `lookup` that finds the row, and a
/// 256-bit `secret` of which only the SHA-256 is stored and which is compared in
/// constant time. Written as `<prefix>_<lookup>_<secret>`.
pub struct IssuedToken {
    pub lookup: String,
    pub secret_hash: String,
    plaintext: String,
}

impl IssuedToken {
    pub fn generate(prefix: &str) -> Self {
        let lookup = random_hex(12);
        let secret = random_hex(32);
        IssuedToken {
            secret_hash: sha256_hex(secret.as_bytes()),
            plaintext: format!("{prefix}_{lookup}_{secret}"),
            lookup,
        }
    }

    /// The token as the holder presents it; shown once, never stored.
    pub fn plaintext(&self) -> &str {
        &self.plaintext
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

/// A presented token split into its parts; says nothing about validity yet.
pub struct PresentedToken<'a> {
    pub lookup: &'a str,
    secret: &'a str,
}

impl<'a> PresentedToken<'a> {
    pub fn parse(prefix: &str, text: &'a str) -> Option<Self> {
        let rest = text.strip_prefix(prefix)?.strip_prefix('_')?;
        let (lookup, secret) = rest.split_once('_')?;
        let hex_of = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
        (hex_of(lookup, 24) && hex_of(secret, 64)).then_some(PresentedToken { lookup, secret })
    }

    /// Whether the secret's SHA-256 begins with `prefix`, compared in constant time.
    pub fn matches_digest_prefix(&self, prefix: &[u8; DIGEST_PREFIX]) -> bool {
        Sha256::digest(self.secret.as_bytes())[..DIGEST_PREFIX]
            .ct_eq(prefix)
            .into()
    }

    /// Whether the secret matches a stored SHA-256, compared in constant time.
    pub fn matches(&self, stored_hash: &str) -> bool {
        constant_time_eq(&sha256_hex(self.secret.as_bytes()), stored_hash)
    }
}

fn hasher() -> Argon2<'static> {
    // argon2id, version 0x13, m = 19 MiB, t = 2, p = 1 (the OWASP baseline).
    Argon2::default()
}

/// An argon2id PHC string for a new password.
pub fn hash_password(password: &NewPassword) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| anyhow::anyhow!("hashing a password: {err}"))
}

/// Checks a password against a stored PHC string. With no stored hash (unknown
/// account) it verifies against a fixed dummy, so both cases cost the same time.
pub fn verify_password(password: &str, stored: Option<&str>) -> bool {
    const DUMMY: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$5kU0Pu5vyXGy9fVN3dM5PoGKQm8fNUa6Fqm1c5TZJ2U";
    let candidate = stored.unwrap_or(DUMMY);
    let Ok(parsed) = PasswordHash::new(candidate) else {
        tracing::error!("a stored password hash is not a PHC string");
        return false;
    };
    let ok = hasher().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && stored.is_some()
}

/// The server's key for secrets that must be sent later and so cannot be hashed
/// (pull tokens, webhook secrets): XChaCha20-Poly1305 with a random nonce per value,
/// bound to what it protects (`purpose`) so a sealed value copied to another row
/// does not open there. Sealed values read `v1.<base64 of nonce and ciphertext>`.
pub struct SealingKey(XChaCha20Poly1305);

/// The key file created beside the signing key when none is configured.
pub const SEALING_KEY_FILE: &str = "secrets.key";

const SEALED_PREFIX: &str = "v1.";
/// What the key check value seals, and for which purpose.
const KEY_CHECK_PURPOSE: &str = "sealing-key-check";
const KEY_CHECK_TEXT: &str = "patchwarden sealing key";

impl SealingKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> SealingKey {
        SealingKey(XChaCha20Poly1305::new(bytes.into()))
    }

    /// Creates a new key at `path` (readable by the owner only); fails when a file
    /// is there already.
    pub fn create(path: &Path) -> anyhow::Result<SealingKey> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        crate::signing::write_private(path, format!("{}\n", random_hex(32)).as_bytes())
            .context("creating the secrets key")?;
        tracing::info!(path = %path.display(), "created the key that seals pull tokens and webhook secrets");
        SealingKey::read(path)
    }

    /// Reads the key at `path` (64 hex digits).
    pub fn read(path: &Path) -> anyhow::Result<SealingKey> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the secrets key {}", path.display()))?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| format!("the secrets key {} is not 64 hex digits", path.display()))?;
        Ok(SealingKey::from_bytes(&bytes))
    }

    /// A value sealed with this key that only this key opens: stored once, it tells
    /// whether a key is the one the stored values were sealed with.
    pub fn check_value(&self) -> String {
        self.seal(KEY_CHECK_PURPOSE, KEY_CHECK_TEXT)
    }

    /// Whether `check` (a [`check_value`](Self::check_value)) was made with this key.
    pub fn opens_check(&self, check: &str) -> bool {
        self.open(KEY_CHECK_PURPOSE, check).as_deref() == Some(KEY_CHECK_TEXT)
    }

    /// Seals `secret` for `purpose`.
    pub fn seal(&self, purpose: &str, secret: &str) -> String {
        let nonce: [u8; 24] = crate::random::bytes();
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: purpose.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(out)
        )
    }

    /// Opens a value sealed for `purpose`; `None` when it was sealed under another
    /// key or for another purpose, or was altered.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<String> {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(sealed.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let plain = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: purpose.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

/// A new webhook signing secret: `whsec_` and 32 random bytes in base64.
pub fn webhook_secret() -> String {
    let bytes: [u8; 32] = crate::random::bytes();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The Standard Webhooks signature header value for a message: `v1,` and the base64
/// HMAC-SHA256, under the secret's key bytes, of `id.timestamp.body`.
pub fn webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    use hmac::Mac;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = <hmac::Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let issued = IssuedToken::generate("pwt");
        let presented = PresentedToken::parse("pwt", issued.plaintext()).unwrap();
        assert_eq!(presented.lookup, issued.lookup);
        assert!(presented.matches(&issued.secret_hash));

        let mut forged = issued.plaintext().to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == '0' { '1' } else { '0' });
        let forged = PresentedToken::parse("pwt", &forged).unwrap();
        assert!(!forged.matches(&issued.secret_hash));

        assert!(PresentedToken::parse("pws", issued.plaintext()).is_none());
        assert!(PresentedToken::parse("pwt", "pwt_abc_def").is_none());
        assert!(!format!("{issued:?}").contains(&issued.plaintext()[30..]));
    }

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_key() {
        let key = SealingKey::from_bytes(&[7; 32]);
        let sealed = key.seal("pull_token:a", "hunter2-device-token");
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            key.seal("pull_token:a", "hunter2-device-token"),
            "a fresh nonce each time"
        );
        assert_eq!(
            key.open("pull_token:a", &sealed).as_deref(),
            Some("hunter2-device-token")
        );
        assert_eq!(key.open("pull_token:b", &sealed), None);
        assert_eq!(SealingKey::from_bytes(&[8; 32]).open("pull_token:a", &sealed), None);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 1;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open("pull_token:a", &String::from_utf8(altered).unwrap()), None);
    }

    #[test]
    fn webhook_signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let signature = webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(webhook_secret().starts_with("whsec_"));
    }

    #[test]
    fn secrets_have_256_bits() {
        let issued = IssuedToken::generate("pwt");
        let secret = issued.plaintext().rsplit('_').next().unwrap();
        assert_eq!(secret.len(), 64);
        assert_ne!(random_hex(32), random_hex(32));
    }

    #[test]
    fn password_hash_is_argon2id_and_verifies() {
        let password = NewPassword::parse("correct horse battery".into()).unwrap();
        let hash = hash_password(&password).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&hash)));
        assert!(!verify_password("correct horse batterY", Some(&hash)));
        assert!(!verify_password("correct horse battery", None));
    }
}
