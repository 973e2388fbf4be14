//! The password policy for new passwords. Verification of stored hashes lives in
//! `crate::secrets`.

use std::fmt;

/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted: bounds the cost of hashing an attacker's input.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password that meets the policy; its `Debug` output never shows it.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(format!("must be at least {MIN_PASSWORD_CHARS} characters long"));
        }
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(format!("must be at most {MAX_PASSWORD_BYTES} bytes long"));
        }
        if raw.trim().is_empty() {
            return Err("must not be only whitespace".into());
        }
        Ok(NewPassword(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(NewPassword::parse("short".into()).is_err());
        assert!(NewPassword::parse(" ".repeat(20)).is_err());
        assert!(NewPassword::parse("x".repeat(MAX_PASSWORD_BYTES + 1)).is_err());
        let ok = NewPassword::parse("correct horse battery".into()).unwrap();
        assert_eq!(ok.expose(), "correct horse battery");
        assert!(!format!("{ok:?}").contains("horse"));
    }
}
