//! Slugs: the short, URL-safe names of customers and products.

use std::fmt;
use std::str::FromStr;

/// Lower-case ASCII letters, digits and inner hyphens, 1 to 63 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Slug {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 63 {
            return Err("must be 1 to 63 characters long".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("`{s}` may hold only lower-case letters, digits and hyphens"));
        }
        if s.starts_with('-') || s.ends_with('-') {
            return Err(format!("`{s}` must not start or end with a hyphen"));
        }
        Ok(Slug(s.to_owned()))
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_rejects() {
        assert_eq!("acme-corp2".parse::<Slug>().unwrap().as_str(), "acme-corp2");
        for bad in [
            "",
            "Acme",
            "acme corp",
            "-acme",
            "acme-",
            "../etc",
            "a".repeat(64).as_str(),
            "acmé",
        ] {
            assert!(bad.parse::<Slug>().is_err(), "{bad} should be rejected");
        }
    }
}
