//! Secrets at rest and in transit: random tokens (API tokens, session cookies, CSRF
//! tokens), their SHA-256 digests, constant-time comparison, and argon2id password
//! hashes. Nothing in this module logs, and no type here prints a secret in `Debug`.

use std::fmt;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::NewPassword;

/// Prefix of API tokens: `pwt_<lookup>_<secret>`.
pub const API_TOKEN_PREFIX: &str = "pwt";
/// Prefix of session cookie values: `pws_<lookup>_<secret>`.
pub const SESSION_PREFIX: &str = "pws";

/// `n` bytes from the operating system's CSPRNG, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

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

    /// Whether the secret's SHA-256 is `digest`, compared in constant time.
    pub fn matches_digest(&self, digest: &[u8; 32]) -> bool {
        Sha256::digest(self.secret.as_bytes()).as_slice().ct_eq(digest).into()
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
