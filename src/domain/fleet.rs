//! The rules of the fleet, without I/O: device labels, where a device stands against
//! an advisory (affected, fixed, unaffected, unknown), and which published patch a
//! polling device is offered. The services feed these from memory and the database.

use std::collections::BTreeMap;

use crate::domain::advisory::Affected;
use crate::domain::range::{Upper, VersionRange};
use crate::domain::version::Version;
use crate::domain::ExposureState;

/// Labels given to a device (`site=berlin`): at most 16, names of letters, digits
/// and `. _ -` (at most 64 bytes), values one line of at most 200 characters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels(BTreeMap<String, String>);

/// The most labels one device carries.
pub const MAX_LABELS: usize = 16;

impl Labels {
    /// Checks labels given as a map.
    pub fn parse(raw: BTreeMap<String, String>) -> Result<Labels, String> {
        if raw.len() > MAX_LABELS {
            return Err(format!("at most {MAX_LABELS} labels are allowed"));
        }
        let mut labels = BTreeMap::new();
        for (name, value) in raw {
            let (name, value) = Self::pair(&name, &value)?;
            labels.insert(name, value);
        }
        Ok(Labels(labels))
    }

    /// One `name=value` pair, checked; also what a label filter is written as.
    pub fn parse_pair(text: &str) -> Result<(String, String), String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not a label: write it as name=value"))?;
        Self::pair(name, value)
    }

    fn pair(name: &str, value: &str) -> Result<(String, String), String> {
        let name = name.trim();
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if name.is_empty() || name.len() > 64 || !plain {
            return Err(format!(
                "`{name}` is not a label name: 1 to 64 letters, digits, `.`, `_` or `-`"
            ));
        }
        let value = value.trim();
        if value.chars().count() > 200 || value.chars().any(char::is_control) {
            return Err(format!(
                "the value of label `{name}` must be one line of at most 200 characters"
            ));
        }
        Ok((name.to_owned(), value.to_owned()))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter()
    }

    pub fn into_map(self) -> BTreeMap<String, String> {
        self.0
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// As stored: a JSON object, names in order.
    pub fn to_json(&self) -> String {
        let object: serde_json::Map<String, serde_json::Value> =
            self.0.iter().map(|(k, v)| (k.clone(), v.clone().into())).collect();
        serde_json::Value::Object(object).to_string()
    }
}

/// Labels as stored: a JSON object that must still hold to the rules.
impl TryFrom<String> for Labels {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let raw: BTreeMap<String, String> =
            serde_json::from_str(&text).map_err(|e| format!("stored labels are not a JSON object of text: {e}"))?;
        Labels::parse(raw)
    }
}

/// Where a device running `version` stands against the affected versions of one
/// product: `Affected` inside a range or listed; `Fixed` past the end of a range on
/// its own train (at or after `fixed`, after `last_affected`); `Unaffected` for any
/// other version it could be compared with; `Unknown` when the version is unknown or
/// could not be read.
pub fn classify(affected: &Affected, version: Option<&Version>) -> ExposureState {
    let Some(version) = version else {
        return ExposureState::Unknown;
    };
    if affected.matches(version).is_some() {
        return ExposureState::Affected;
    }
    if passed_range(affected, version).is_some() {
        ExposureState::Fixed
    } else {
        ExposureState::Unaffected
    }
}

/// The range `version` is past on its own train: at or after `fixed`, after
/// `last_affected`.
fn passed_range<'a>(affected: &'a Affected, version: &Version) -> Option<&'a VersionRange> {
    affected.ranges.iter().find(|range| {
        version.same_train(range.introduced())
            && match range.upper() {
                Upper::Fixed(fixed) => version >= fixed,
                Upper::LastAffected(last) => version > last,
                Upper::Open => false,
            }
    })
}

/// A range as a sentence's part: `from 6.3.0r12 up to (not including) 6.3.0r21`.
fn range_text(range: &VersionRange) -> String {
    match range.upper() {
        Upper::Fixed(fixed) => format!("from {} up to (not including) {fixed}", range.introduced()),
        Upper::LastAffected(last) => format!("from {} up to {last}", range.introduced()),
        Upper::Open => format!("from {} on, with no fix yet", range.introduced()),
    }
}

/// Why [`classify`] placed `version` where it did, in words a device page shows:
/// the range it fell in, the fix it is past, or why it cannot be placed. `given` is
/// the version as the device stated it, for one that could not be read.
pub fn explain(affected: &Affected, version: Option<&Version>, given: Option<&str>) -> String {
    let Some(version) = version else {
        return match given {
            Some(text) => format!(
                "its version `{text}` cannot be read as a {} version",
                affected.product.scheme
            ),
            None => "its version is not known yet: it has not polled, been pulled or been given one".to_owned(),
        };
    };
    if let Some(range) = affected.ranges.iter().find(|r| r.contains(version)) {
        return format!("runs {version}, inside the affected range {}", range_text(range));
    }
    if affected.versions.contains(version) {
        return format!("runs {version}, which the advisory lists as affected");
    }
    match passed_range(affected, version) {
        Some(range) => format!("runs {version}, past the affected range {}", range_text(range)),
        None => format!("runs {version}, outside every affected range"),
    }
}

/// What the poll needs to know of a published patch to decide whether to offer it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub version: Version,
    /// `None`: for every platform of the product.
    pub platform: Option<String>,
    /// The running versions it installs over.
    pub applies_to: Vec<VersionRange>,
    /// It fixes an advisory marked as an emergency.
    pub emergency: bool,
    /// Signed as an explicit rollback: it goes back to an older version.
    pub rollback: bool,
}

impl Candidate {
    /// Whether it may be offered to a device on `platform` running `running`: for
    /// its platform, applicable to the running version, and an upgrade (or, signed
    /// as a rollback, a downgrade).
    pub fn applies(&self, running: &Version, platform: Option<&str>) -> bool {
        let platform_fits = match (&self.platform, platform) {
            (None, _) => true,
            (Some(wanted), Some(actual)) => wanted.eq_ignore_ascii_case(actual),
            (Some(_), None) => false,
        };
        let direction = if self.rollback {
            self.version < *running
        } else {
            self.version > *running
        };
        platform_fits && direction && self.applies_to.iter().any(|r| r.contains(running))
    }
}

/// The index of the patch to offer among `candidates`: an emergency fix before any
/// other, then a patch on the running version's release train before one that moves
/// to another train, then the newest. Never a downgrade unless signed as a
/// rollback (which the vendor then means before anything else), never a patch whose
/// ranges leave out the running version.
pub fn choose_offer(candidates: &[Candidate], running: &Version, platform: Option<&str>) -> Option<usize> {
    choose_offer_where(candidates, running, platform, |_| true)
}

/// [`choose_offer`] among the candidates whose index `allowed` lets through (those
/// a rollout holds back are left out).
pub fn choose_offer_where(
    candidates: &[Candidate],
    running: &Version,
    platform: Option<&str>,
    allowed: impl Fn(usize) -> bool,
) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(i, c)| allowed(*i) && c.applies(running, platform))
        .max_by(|(_, a), (_, b)| {
            let rank = |c: &Candidate| (c.rollback, c.emergency, c.version.same_train(running));
            rank(a).cmp(&rank(b)).then_with(|| a.version.cmp(&b.version))
        })
        .map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::advisory::tests as test_fixtures;
    use crate::domain::range::RangeInput;
    use crate::domain::version::VersionScheme;

    fn v(text: &str) -> Version {
        VersionScheme::Vendor.parse(text).unwrap()
    }

    fn range(introduced: &str, fixed: Option<&str>, last: Option<&str>) -> VersionRange {
        VersionRange::parse(
            VersionScheme::Vendor,
            &RangeInput {
                introduced: introduced.into(),
                fixed: fixed.map(Into::into),
                last_affected: last.map(Into::into),
            },
        )
        .unwrap()
    }

    fn screenos() -> Affected {
        Affected {
            product: test_fixtures::screenos(),
            ranges: vec![
                range("6.2.0r15", Some("6.2.0r19"), None),
                range("6.3.0r12", Some("6.3.0r21"), None),
            ],
            versions: vec![v("6.1.0r7")],
        }
    }

    #[test]
    fn explains_each_placement_in_words() {
        let affected = screenos();
        let say = |text: &str| explain(&affected, Some(&v(text)), Some(text));
        assert_eq!(
            say("6.3.0r20"),
            "runs 6.3.0r20, inside the affected range from 6.3.0r12 up to (not including) 6.3.0r21"
        );
        assert!(say("6.3.0r21").starts_with("runs 6.3.0r21, past the affected range from 6.3.0r12"));
        assert_eq!(say("6.3.0r10"), "runs 6.3.0r10, outside every affected range");
        assert_eq!(say("6.1.0r7"), "runs 6.1.0r7, which the advisory lists as affected");
        assert!(explain(&affected, None, None).starts_with("its version is not known"));
        assert_eq!(
            explain(&affected, None, Some("banana")),
            "its version `banana` cannot be read as a vendor version"
        );
    }

    #[test]
    fn classifies_the_backdoor_fleet() {
        let affected = screenos();
        let state = |text: &str| classify(&affected, Some(&v(text)));
        assert_eq!(state("6.3.0r19"), ExposureState::Affected);
        assert_eq!(state("6.3.0r20"), ExposureState::Affected);
        assert_eq!(state("6.3.0r12"), ExposureState::Affected);
        assert_eq!(state("6.3.0r21"), ExposureState::Fixed);
        assert_eq!(state("6.3.0r25"), ExposureState::Fixed);
        assert_eq!(state("6.2.0r18"), ExposureState::Affected);
        assert_eq!(state("6.2.0r19"), ExposureState::Fixed);
        assert_eq!(state("6.2.0r10"), ExposureState::Unaffected);
        assert_eq!(state("6.3.0r11"), ExposureState::Unaffected);
        assert_eq!(state("6.4.0r1"), ExposureState::Unaffected);
        assert_eq!(state("6.1.0r7"), ExposureState::Affected, "a listed build");
        assert_eq!(classify(&affected, None), ExposureState::Unknown);
    }

    #[test]
    fn last_affected_and_open_ranges() {
        let affected = Affected {
            product: test_fixtures::screenos(),
            ranges: vec![range("7.0.0r1", None, Some("7.0.0r4")), range("8.0.0r1", None, None)],
            versions: vec![],
        };
        assert_eq!(classify(&affected, Some(&v("7.0.0r4"))), ExposureState::Affected);
        assert_eq!(classify(&affected, Some(&v("7.0.0r5"))), ExposureState::Fixed);
        assert_eq!(classify(&affected, Some(&v("8.0.0r99"))), ExposureState::Affected);
    }

    fn candidate(version: &str, emergency: bool, applies_to: Vec<VersionRange>) -> Candidate {
        Candidate {
            version: v(version),
            platform: None,
            applies_to,
            emergency,
            rollback: false,
        }
    }

    #[test]
    fn offers_the_emergency_fix_first_then_the_newest_on_the_train() {
        let train_63 = || vec![range("6.3.0r1", Some("6.3.0r99"), None)];
        let candidates = vec![
            candidate("6.3.0r22", false, train_63()),
            candidate("6.3.0r21", true, train_63()),
            candidate("6.3.0r23", false, train_63()),
        ];
        assert_eq!(choose_offer(&candidates, &v("6.3.0r20"), None), Some(1));
        let routine = vec![
            candidate("6.3.0r22", false, train_63()),
            candidate("6.3.0r23", false, train_63()),
            candidate("6.4.0r1", false, train_63()),
        ];
        assert_eq!(
            choose_offer(&routine, &v("6.3.0r20"), None),
            Some(1),
            "the newest on the running train before a train change"
        );
        assert_eq!(
            choose_offer(&routine[2..], &v("6.3.0r20"), None),
            Some(0),
            "a move to another train when it is all there is"
        );
    }

    #[test]
    fn never_a_downgrade_nor_outside_the_ranges_nor_another_platform() {
        let train_63 = vec![range("6.3.0r12", Some("6.3.0r21"), None)];
        let fix = candidate("6.3.0r21", true, train_63);
        assert_eq!(choose_offer(std::slice::from_ref(&fix), &v("6.3.0r21"), None), None);
        assert_eq!(choose_offer(std::slice::from_ref(&fix), &v("6.3.0r25"), None), None);
        assert_eq!(choose_offer(std::slice::from_ref(&fix), &v("6.3.0r11"), None), None);
        assert_eq!(choose_offer(std::slice::from_ref(&fix), &v("6.2.0r10"), None), None);
        let mut ssg = fix.clone();
        ssg.platform = Some("ssg5".into());
        assert_eq!(
            choose_offer(std::slice::from_ref(&ssg), &v("6.3.0r20"), Some("SSG5")),
            Some(0)
        );
        assert_eq!(
            choose_offer(std::slice::from_ref(&ssg), &v("6.3.0r20"), Some("isg2000")),
            None
        );
        assert_eq!(choose_offer(std::slice::from_ref(&ssg), &v("6.3.0r20"), None), None);
    }

    #[test]
    fn labels_are_checked() {
        assert_eq!(
            Labels::parse_pair("site=berlin").unwrap(),
            ("site".into(), "berlin".into())
        );
        assert!(Labels::parse_pair("site").is_err());
        assert!(Labels::parse_pair("si te=x").is_err());
        assert!(Labels::parse_pair("site=a\nb").is_err());
        let many = (0..=MAX_LABELS).map(|n| (format!("l{n}"), "x".to_owned())).collect();
        assert!(Labels::parse(many).is_err());
        // As stored: a JSON object that reads back, and is checked when it does.
        let labels = Labels::parse(BTreeMap::from([("site".to_owned(), "berlin".to_owned())])).unwrap();
        assert_eq!(labels.to_json(), r#"{"site":"berlin"}"#);
        assert_eq!(Labels::try_from(labels.to_json()), Ok(labels));
        assert!(Labels::try_from(r#"{"si te":"x"}"#.to_owned()).is_err());
        assert!(Labels::try_from("[1]".to_owned()).is_err());
    }

    proptest::proptest! {
        /// Whatever the candidates, an offer applies to the running version, and no
        /// applicable candidate outranks it.
        #[test]
        fn the_offer_is_applicable_and_unbeaten(
            running in 1u32..40,
            patches in proptest::collection::vec((1u32..40, proptest::bool::ANY, 1u32..40), 0..8),
        ) {
            let running = v(&format!("6.3.0r{running}"));
            let candidates: Vec<Candidate> = patches
                .iter()
                .map(|(target, emergency, from)| candidate(
                    &format!("6.3.0r{target}"),
                    *emergency,
                    vec![range(&format!("6.3.0r{from}"), None, None)],
                ))
                .collect();
            match choose_offer(&candidates, &running, None) {
                None => proptest::prop_assert!(candidates.iter().all(|c| !c.applies(&running, None))),
                Some(i) => {
                    let chosen = &candidates[i];
                    proptest::prop_assert!(chosen.applies(&running, None));
                    proptest::prop_assert!(chosen.version > running);
                    for other in candidates.iter().filter(|c| c.applies(&running, None)) {
                        proptest::prop_assert!(
                            (other.emergency, &other.version) <= (chosen.emergency, &chosen.version)
                        );
                    }
                }
            }
        }
    }
}

/// What a device said of its view of the transparency log: whether it is stale
/// (no genuine tree head for longer than its `stale_after`) and how old its newest
/// genuine head is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadReport {
    pub stale: bool,
    pub head_age_s: Option<u64>,
    pub at: chrono::NaiveDateTime,
}
