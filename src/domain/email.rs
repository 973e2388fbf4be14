//! E-mail addresses as login names: trimmed, lower-cased, plausibly shaped.

use std::fmt;
use std::str::FromStr;

/// A normalised e-mail address; one that exists has a local part, one `@` and a
/// dotted domain, and no whitespace or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        if email.len() > 254 {
            return Err("is longer than 254 characters".into());
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters".into());
        }
        let (local, domain) = email.split_once('@').ok_or_else(|| format!("`{email}` has no `@`"))?;
        if local.is_empty() || domain.contains('@') {
            return Err(format!("`{email}` is not an e-mail address"));
        }
        let labels_ok = domain.split('.').all(|label| !label.is_empty());
        if !domain.contains('.') || !labels_ok {
            return Err(format!("`{domain}` is not a domain name"));
        }
        Ok(Email(email))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_whitespace() {
        let email: Email = "  Alice@Example.COM ".parse().unwrap();
        assert_eq!(email.as_str(), "alice@example.com");
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a@b@c.d",
            "al ice@x.io",
            "a@x..io",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad} should be rejected");
        }
    }
}
