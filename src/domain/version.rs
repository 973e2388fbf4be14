//! Product versions in two schemes. `vendor` orders the release strings of network
//! appliances segment by segment — runs of digits compare as numbers, runs of
//! letters compare case-insensitively, separators only delimit — so that
//! `6.3.0r20 < 6.3.0r21`, `21.4R3 < 21.4R3-S1 < 21.4R3-S5 < 22.1R1` and
//! `12.3X48-D100 < 12.3X48-D105`. `semver` follows Semantic Versioning 2.0.0,
//! pre-releases before their release and build metadata ignored.
//!
//! A version's *release train* is what a fix is shipped on: for `vendor` the segments
//! before the first letter (`6.3.0` of `6.3.0r21`, `21.4` of `21.4R3-S5`), or all but
//! the last segment when there is no letter; for `semver` every version is on one
//! train, as semver ranges span minors.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a product's versions are written and ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionScheme {
    Vendor,
    Semver,
}

impl VersionScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionScheme::Vendor => "vendor",
            VersionScheme::Semver => "semver",
        }
    }

    /// Parses `text` as a version of this scheme.
    pub fn parse(self, text: &str) -> Result<Version, String> {
        match self {
            VersionScheme::Vendor => parse_vendor(text),
            VersionScheme::Semver => parse_semver(text),
        }
    }
}

/// A scheme as stored.
impl TryFrom<String> for VersionScheme {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl FromStr for VersionScheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "vendor" => Ok(VersionScheme::Vendor),
            "semver" => Ok(VersionScheme::Semver),
            _ => Err(format!("`{s}` is not a version scheme (vendor or semver)")),
        }
    }
}

impl fmt::Display for VersionScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One segment of a version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Segment {
    /// Letters sort before numbers at the same position (`1.0a` < `1.0.1`).
    Alpha(String),
    Num(u64),
}

/// The comparable form of a version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Vendor(Vec<Segment>),
    Semver {
        core: [u64; 3],
        /// Empty for a release; identifiers otherwise.
        pre: Vec<Segment>,
    },
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Key::Vendor(a), Key::Vendor(b)) => a.cmp(b),
            (Key::Semver { core: ca, pre: pa }, Key::Semver { core: cb, pre: pb }) => {
                ca.cmp(cb).then_with(|| match (pa.is_empty(), pb.is_empty()) {
                    (true, true) => Ordering::Equal,
                    (true, false) => Ordering::Greater,
                    (false, true) => Ordering::Less,
                    // Numeric identifiers sort below alphanumeric ones in semver.
                    (false, false) => semver_pre_cmp(pa, pb),
                })
            }
            (Key::Vendor(_), Key::Semver { .. }) => Ordering::Less,
            (Key::Semver { .. }, Key::Vendor(_)) => Ordering::Greater,
        }
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn semver_pre_cmp(a: &[Segment], b: &[Segment]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = match (x, y) {
            (Segment::Num(x), Segment::Num(y)) => x.cmp(y),
            (Segment::Num(_), Segment::Alpha(_)) => Ordering::Less,
            (Segment::Alpha(_), Segment::Num(_)) => Ordering::Greater,
            (Segment::Alpha(x), Segment::Alpha(y)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

/// A parsed version: it keeps the text as written and orders by its segments.
#[derive(Clone, Debug)]
pub struct Version {
    text: String,
    key: Key,
    train: Vec<Segment>,
}

impl Version {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether both versions are on the same release train.
    pub fn same_train(&self, other: &Version) -> bool {
        self.train == other.train
    }

    /// The release train as text (`6.3.0`, `21.4`), for display.
    pub fn train(&self) -> String {
        self.train
            .iter()
            .map(|s| match s {
                Segment::Num(n) => n.to_string(),
                Segment::Alpha(a) => a.clone(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Version {}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const MAX_VERSION_LEN: usize = 64;

fn check_text(text: &str) -> Result<(), String> {
    if text.is_empty() {
        return Err("a version must not be empty".into());
    }
    if text.len() > MAX_VERSION_LEN {
        return Err(format!("a version is at most {MAX_VERSION_LEN} characters"));
    }
    Ok(())
}

fn number(digits: &str, text: &str) -> Result<u64, String> {
    digits
        .parse::<u64>()
        .map_err(|_| format!("`{text}` has a number too large to compare"))
}

fn parse_vendor(text: &str) -> Result<Version, String> {
    check_text(text)?;
    let bytes = text.as_bytes();
    if !bytes[0].is_ascii_digit() {
        return Err(format!("`{text}` must start with a digit"));
    }
    let mut segments = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            segments.push(Segment::Num(number(&text[start..i], text)?));
        } else if b.is_ascii_alphabetic() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                i += 1;
            }
            segments.push(Segment::Alpha(text[start..i].to_ascii_lowercase()));
        } else if matches!(b, b'.' | b'-' | b'_') {
            let next_ok = bytes.get(i + 1).is_some_and(u8::is_ascii_alphanumeric);
            if !next_ok {
                return Err(format!(
                    "`{text}` has a separator that is not followed by a digit or a letter"
                ));
            }
            i += 1;
        } else {
            return Err(format!(
                "`{text}` may hold only digits, letters and the separators . - _ (found `{}`)",
                char::from(b).escape_default()
            ));
        }
    }
    let first_alpha = segments.iter().position(|s| matches!(s, Segment::Alpha(_)));
    let train = match first_alpha {
        Some(at) => segments[..at].to_vec(),
        None => segments[..segments.len().saturating_sub(1)].to_vec(),
    };
    Ok(Version {
        text: text.to_owned(),
        key: Key::Vendor(segments),
        train,
    })
}

fn parse_semver(text: &str) -> Result<Version, String> {
    check_text(text)?;
    let without_build = text
        .split_once('+')
        .map_or(text, |(v, build)| if build.is_empty() { "" } else { v });
    let (core, pre) = match without_build.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (without_build, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    let invalid = || format!("`{text}` is not a semantic version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])");
    if parts.len() != 3 {
        return Err(invalid());
    }
    let mut numbers = [0u64; 3];
    for (slot, part) in numbers.iter_mut().zip(&parts) {
        let leading_zero = part.len() > 1 && part.starts_with('0');
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) || leading_zero {
            return Err(invalid());
        }
        *slot = number(part, text)?;
    }
    let mut identifiers = Vec::new();
    if let Some(pre) = pre {
        for id in pre.split('.') {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(invalid());
            }
            if id.bytes().all(|b| b.is_ascii_digit()) {
                identifiers.push(Segment::Num(number(id, text)?));
            } else {
                identifiers.push(Segment::Alpha(id.to_owned()));
            }
        }
    }
    Ok(Version {
        text: text.to_owned(),
        key: Key::Semver {
            core: numbers,
            pre: identifiers,
        },
        train: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        VersionScheme::Vendor.parse(text).unwrap()
    }

    fn s(text: &str) -> Version {
        VersionScheme::Semver.parse(text).unwrap()
    }

    fn ascending(list: &[Version]) {
        for pair in list.windows(2) {
            assert!(pair[0] < pair[1], "{} should sort before {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn screenos_orders_by_release_number() {
        ascending(&[
            v("6.2.0r15"),
            v("6.2.0r19"),
            v("6.3.0r9"),
            v("6.3.0r12"),
            v("6.3.0r20"),
            v("6.3.0r21"),
        ]);
        assert_eq!(v("6.3.0R21"), v("6.3.0r21"));
        assert_eq!(v("6.3.0r21").train(), "6.3.0");
        assert!(v("6.3.0r12").same_train(&v("6.3.0r21")));
        assert!(!v("6.2.0r19").same_train(&v("6.3.0r21")));
    }

    #[test]
    fn junos_orders_service_releases_after_their_base() {
        ascending(&[
            v("21.4R1"),
            v("21.4R3"),
            v("21.4R3-S1"),
            v("21.4R3-S5"),
            v("21.4R3-S10"),
            v("22.1R1"),
        ]);
        ascending(&[v("12.3X48-D100"), v("12.3X48-D105")]);
        assert!(v("21.4R3-S5").same_train(&v("21.4R1")));
        assert_eq!(v("21.4R3-S5").train(), "21.4");
        assert!(!v("21.4R3").same_train(&v("22.1R1")));
    }

    #[test]
    fn numbers_compare_as_numbers() {
        ascending(&[v("1.2"), v("1.10"), v("2.0"), v("10.0")]);
        assert_eq!(v("1.02"), v("1.2"));
    }

    #[test]
    fn vendor_rejects_malformed() {
        for bad in [
            "",
            "r21",
            "6.3.0r21!",
            "6..3",
            "6.3.",
            "6.3 0",
            "6/3",
            "99999999999999999999999",
            &"1".repeat(65),
        ] {
            assert!(VersionScheme::Vendor.parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn semver_precedence() {
        ascending(&[
            s("1.0.0-alpha"),
            s("1.0.0-alpha.1"),
            s("1.0.0-alpha.beta"),
            s("1.0.0-beta"),
            s("1.0.0-beta.2"),
            s("1.0.0-beta.11"),
            s("1.0.0-rc.1"),
            s("1.0.0"),
            s("1.0.1"),
            s("1.10.0"),
            s("2.0.0"),
        ]);
        assert_eq!(s("1.0.0+build.5"), s("1.0.0"));
        assert!(s("1.0.0").same_train(&s("3.4.5")));
        for bad in ["1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.0.0+", "v1.0.0", "1.0.0-a..b"] {
            assert!(VersionScheme::Semver.parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    fn vendor_text() -> impl Strategy<Value = String> {
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}([rRsSdDxX][0-9]{1,3}){0,1}(-[SsDd][0-9]{1,3}){0,1}"
    }

    proptest! {
        #[test]
        fn vendor_order_is_total_and_transitive(a in vendor_text(), b in vendor_text(), c in vendor_text()) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            // Exactly one of <, =, > holds, and it is antisymmetric.
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn vendor_parse_print_round_trips(text in vendor_text()) {
            let parsed = v(&text);
            prop_assert_eq!(parsed.to_string(), text.clone());
            prop_assert_eq!(v(&parsed.to_string()), parsed);
        }

        #[test]
        fn semver_order_is_total_and_transitive(
            a in (0u64..4, 0u64..4, 0u64..4, proptest::option::of("[a-z]{1,3}(\\.[0-9]{1,2})?")),
            b in (0u64..4, 0u64..4, 0u64..4, proptest::option::of("[a-z]{1,3}(\\.[0-9]{1,2})?")),
            c in (0u64..4, 0u64..4, 0u64..4, proptest::option::of("[a-z]{1,3}(\\.[0-9]{1,2})?")),
        ) {
            let make = |(x, y, z, pre): (u64, u64, u64, Option<String>)| {
                s(&match pre { Some(p) => format!("{x}.{y}.{z}-{p}"), None => format!("{x}.{y}.{z}") })
            };
            let (a, b, c) = (make(a), make(b), make(c));
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
            prop_assert_eq!(s(&a.to_string()), a);
        }
    }
}
