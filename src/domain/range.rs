//! Affected version ranges. A range starts at `introduced` (inclusive) and ends at
//! `fixed` (exclusive), at `last_affected` (inclusive), or nowhere (no fix yet). For
//! the `vendor` scheme a range lies on one release train: its ends share the train
//! of `introduced`, and a version on another train is never inside it, whatever its
//! order. Explicit versions complement ranges for one-off affected builds.

use serde::{Deserialize, Serialize};

use super::version::{Version, VersionScheme};

/// A range as written in an advisory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeInput {
    pub introduced: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
}

/// Where a range ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Upper {
    /// The first version with the fix; not affected.
    Fixed(Version),
    /// The last affected version; no fixed release named.
    LastAffected(Version),
    /// No fix yet: every later version on the train is affected.
    Open,
}

/// A well-formed range: ordered ends on one train.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRange {
    introduced: Version,
    upper: Upper,
}

impl VersionRange {
    /// Checks a written range; errors name the end that is wrong.
    pub fn parse(scheme: VersionScheme, input: &RangeInput) -> Result<Self, (&'static str, String)> {
        let introduced = scheme.parse(&input.introduced).map_err(|e| ("introduced", e))?;
        let upper = match (&input.fixed, &input.last_affected) {
            (Some(_), Some(_)) => {
                return Err((
                    "fixed",
                    "a range has either `fixed` or `last_affected`, not both".into(),
                ));
            }
            (Some(fixed), None) => {
                let fixed = scheme.parse(fixed).map_err(|e| ("fixed", e))?;
                if fixed <= introduced {
                    return Err((
                        "fixed",
                        format!("the range is inverted: fixed {fixed} is not after introduced {introduced}"),
                    ));
                }
                if !fixed.same_train(&introduced) {
                    return Err((
                        "fixed",
                        format!("fixed {fixed} is not on the release train of introduced {introduced} ({}); give one range per train", introduced.train()),
                    ));
                }
                Upper::Fixed(fixed)
            }
            (None, Some(last)) => {
                let last = scheme.parse(last).map_err(|e| ("last_affected", e))?;
                if last < introduced {
                    return Err((
                        "last_affected",
                        format!("the range is inverted: last_affected {last} is before introduced {introduced}"),
                    ));
                }
                if !last.same_train(&introduced) {
                    return Err((
                        "last_affected",
                        format!("last_affected {last} is not on the release train of introduced {introduced}; give one range per train"),
                    ));
                }
                Upper::LastAffected(last)
            }
            (None, None) => Upper::Open,
        };
        Ok(VersionRange { introduced, upper })
    }

    pub fn introduced(&self) -> &Version {
        &self.introduced
    }

    pub fn upper(&self) -> &Upper {
        &self.upper
    }

    /// The release that fixes this range, if one is named.
    pub fn fixed(&self) -> Option<&Version> {
        match &self.upper {
            Upper::Fixed(v) => Some(v),
            _ => None,
        }
    }

    /// Whether `version` is affected by this range.
    pub fn contains(&self, version: &Version) -> bool {
        if !version.same_train(&self.introduced) || *version < self.introduced {
            return false;
        }
        match &self.upper {
            Upper::Fixed(fixed) => version < fixed,
            Upper::LastAffected(last) => version <= last,
            Upper::Open => true,
        }
    }

    /// Whether the two ranges share a version. Both are intervals of one order, so
    /// they meet exactly when the later start lies in both.
    pub fn overlaps(&self, other: &VersionRange) -> bool {
        let later_start = if self.introduced >= other.introduced {
            &self.introduced
        } else {
            &other.introduced
        };
        self.contains(later_start) && other.contains(later_start)
    }

    /// The range in `vers` notation, as CSAF and OSV tools read it.
    pub fn to_vers(&self) -> String {
        match &self.upper {
            Upper::Fixed(fixed) => format!(">={}|<{}", self.introduced, fixed),
            Upper::LastAffected(last) => format!(">={}|<={}", self.introduced, last),
            Upper::Open => format!(">={}", self.introduced),
        }
    }

    /// The range as written.
    pub fn to_input(&self) -> RangeInput {
        RangeInput {
            introduced: self.introduced.to_string(),
            fixed: self.fixed().map(ToString::to_string),
            last_affected: match &self.upper {
                Upper::LastAffected(v) => Some(v.to_string()),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(
        introduced: &str,
        fixed: Option<&str>,
        last: Option<&str>,
    ) -> Result<VersionRange, (&'static str, String)> {
        VersionRange::parse(
            VersionScheme::Vendor,
            &RangeInput {
                introduced: introduced.into(),
                fixed: fixed.map(Into::into),
                last_affected: last.map(Into::into),
            },
        )
    }

    fn v(text: &str) -> Version {
        VersionScheme::Vendor.parse(text).unwrap()
    }

    #[test]
    fn half_open_range_edges() {
        let r = range("6.3.0r12", Some("6.3.0r21"), None).unwrap();
        assert!(!r.contains(&v("6.3.0r11")));
        assert!(r.contains(&v("6.3.0r12")));
        assert!(r.contains(&v("6.3.0r20")));
        assert!(!r.contains(&v("6.3.0r21")));
        assert!(!r.contains(&v("6.2.0r16")), "another train");
        assert_eq!(r.fixed(), Some(&v("6.3.0r21")));
        assert_eq!(r.to_vers(), ">=6.3.0r12|<6.3.0r21");
    }

    #[test]
    fn last_affected_and_open_ranges() {
        let r = range("21.4R1", None, Some("21.4R3-S4")).unwrap();
        assert!(r.contains(&v("21.4R3-S4")));
        assert!(!r.contains(&v("21.4R3-S5")));
        let open = range("6.2.0r15", None, None).unwrap();
        assert!(open.contains(&v("6.2.0r99")));
        assert!(!open.contains(&v("6.3.0r1")), "an open range stays on its train");
        assert_eq!(open.fixed(), None);
    }

    #[test]
    fn malformed_ranges_name_the_end() {
        assert_eq!(range("6.3.0r21", Some("6.3.0r12"), None).unwrap_err().0, "fixed");
        assert_eq!(range("6.3.0r21", Some("6.3.0r21"), None).unwrap_err().0, "fixed");
        assert_eq!(
            range("6.3.0r21", None, Some("6.3.0r20")).unwrap_err().0,
            "last_affected"
        );
        assert_eq!(range("6.2.0r15", Some("6.3.0r21"), None).unwrap_err().0, "fixed");
        assert_eq!(
            range("6.2.0r15", Some("6.2.0r19"), Some("6.2.0r18")).unwrap_err().0,
            "fixed"
        );
        assert_eq!(range("bogus!", None, None).unwrap_err().0, "introduced");
    }

    #[test]
    fn overlap() {
        let a = range("6.3.0r12", Some("6.3.0r21"), None).unwrap();
        let b = range("6.3.0r20", Some("6.3.0r22"), None).unwrap();
        let c = range("6.3.0r21", None, None).unwrap();
        let d = range("6.2.0r15", Some("6.2.0r19"), None).unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c), "half-open ranges that touch do not overlap");
        assert!(!a.overlaps(&d) && !c.overlaps(&d));
        assert!(b.overlaps(&c));
    }

    proptest! {
        #[test]
        fn contains_agrees_with_the_bounds(lo in 0u32..50, len in 1u32..50, probe in 0u32..120) {
            let r = range(&format!("6.3.0r{lo}"), Some(&format!("6.3.0r{}", lo + len)), None).unwrap();
            prop_assert_eq!(r.contains(&v(&format!("6.3.0r{probe}"))), probe >= lo && probe < lo + len);
        }

        #[test]
        fn overlap_is_symmetric_and_means_a_shared_version(a in 0u32..30, al in 1u32..20, b in 0u32..30, bl in 1u32..20) {
            let x = range(&format!("1.0R{a}"), Some(&format!("1.0R{}", a + al)), None).unwrap();
            let y = range(&format!("1.0R{b}"), Some(&format!("1.0R{}", b + bl)), None).unwrap();
            let shared = (0..60).any(|n| x.contains(&v(&format!("1.0R{n}"))) && y.contains(&v(&format!("1.0R{n}"))));
            prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
            prop_assert_eq!(x.overlaps(&y), shared);
        }
    }
}
