//! The checked inputs of a patch: a plain file name, a SHA-256, a platform name, and
//! byte counts as stored. Each exists only once it has passed its check.

use std::fmt;
use std::str::FromStr;

macro_rules! checked_text {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_text!(
    /// A file name safe in a `Content-Disposition` header and on any disk: letters,
    /// digits and `. _ - +`, not starting with a dot, at most 200 bytes.
    FileName
);

checked_text!(
    /// A SHA-256 as 64 lower-case hex digits.
    Sha256
);

checked_text!(
    /// A hardware platform name: letters, digits and `. _ -`, at most 64 bytes.
    Platform
);

impl FromStr for FileName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let ok = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'+'));
        if ok {
            Ok(FileName(name.to_owned()))
        } else {
            Err(format!(
                "`{name}` is not a plain file name (letters, digits, . _ - +; no paths; at most 200 characters)"
            ))
        }
    }
}

impl FromStr for Sha256 {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let hash = text.trim().to_ascii_lowercase();
        if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Sha256(hash))
        } else {
            Err(format!("`{text}` is not a SHA-256 (64 hex digits)"))
        }
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let p = text.trim();
        let ok = !p.is_empty()
            && p.len() <= 64
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Platform(p.to_owned()))
        } else {
            Err(format!("`{p}` is not a platform name (letters, digits, . _ -)"))
        }
    }
}

/// A byte count or offset as the database stores it (a signed 64-bit column).
pub fn stored_count(n: u64) -> Result<i64, String> {
    i64::try_from(n).map_err(|_| format!("{n} bytes is more than can be stored"))
}

/// A byte count or offset read back from the database; negative means corrupt.
pub fn read_count(n: i64) -> Result<u64, String> {
    u64::try_from(n).map_err(|_| format!("the database holds a negative byte count ({n})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_plain() {
        assert!("screenos-6.3.0r21+fix.bin".parse::<FileName>().is_ok());
        for bad in [
            "",
            ".hidden",
            "../etc/passwd",
            "a/b",
            "a b",
            "naïve.bin",
            &"x".repeat(201),
        ] {
            assert!(bad.parse::<FileName>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sha256_is_normalised() {
        let upper = "A".repeat(64);
        assert_eq!(upper.parse::<Sha256>().unwrap().as_str(), "a".repeat(64));
        assert!("abc".parse::<Sha256>().is_err());
        assert!("g".repeat(64).parse::<Sha256>().is_err());
    }

    #[test]
    fn platforms_and_counts() {
        assert_eq!(" ssg-500 ".parse::<Platform>().unwrap().as_str(), "ssg-500");
        assert!("ssg 500".parse::<Platform>().is_err());
        assert!("".parse::<Platform>().is_err());
        assert_eq!(stored_count(5), Ok(5));
        assert!(stored_count(u64::MAX).is_err());
        assert!(read_count(-1).is_err());
        assert_eq!(read_count(7), Ok(7));
    }
}
