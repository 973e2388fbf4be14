//! CVSS v3.x and v4.0 vectors, scored here rather than trusted from the caller. A
//! vector that exists has every base metric; an invalid one is refused with a
//! message naming the metric that is wrong or missing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Qualitative severity, the same scale in v3 and v4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    None,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::None,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::None => "none",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    fn from_cvss(severity: cvss::Severity) -> Self {
        match severity {
            cvss::Severity::None => Severity::None,
            cvss::Severity::Low => Severity::Low,
            cvss::Severity::Medium => Severity::Medium,
            cvss::Severity::High => Severity::High,
            cvss::Severity::Critical => Severity::Critical,
        }
    }
}

impl FromStr for Severity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not a severity (none, low, medium, high, critical)"))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scored vector.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CvssScore {
    /// The vector as given, trimmed.
    pub vector: String,
    /// The base score, 0.0 to 10.0, one decimal.
    pub score: f64,
    pub severity: Severity,
}

/// Parses and scores a CVSS v3.0 or v3.1 vector (`CVSS:3.1/AV:N/...`).
pub fn score_v3(text: &str) -> Result<CvssScore, String> {
    let text = text.trim();
    if !text.starts_with("CVSS:3.") {
        return Err(format!(
            "`{text}` is not a CVSS v3 vector (it must start with CVSS:3.1/ or CVSS:3.0/)"
        ));
    }
    let vector = cvss::v3::Vector::from_str(text).map_err(|e| format!("{e}"))?;
    let missing = [
        ("AV", vector.av.is_none()),
        ("AC", vector.ac.is_none()),
        ("PR", vector.pr.is_none()),
        ("UI", vector.ui.is_none()),
        ("S", vector.s.is_none()),
        ("C", vector.c.is_none()),
        ("I", vector.i.is_none()),
        ("A", vector.a.is_none()),
    ];
    if let Some((metric, _)) = missing.iter().find(|(_, absent)| *absent) {
        return Err(format!("the CVSS v3 vector lacks the mandatory base metric {metric}"));
    }
    let score = vector.base_score();
    Ok(CvssScore {
        vector: text.to_owned(),
        score: round1(score.value()),
        severity: Severity::from_cvss(score.severity()),
    })
}

/// Parses and scores a CVSS v4.0 vector (`CVSS:4.0/AV:N/...`).
pub fn score_v4(text: &str) -> Result<CvssScore, String> {
    let text = text.trim();
    if !text.starts_with("CVSS:4.0/") {
        return Err(format!(
            "`{text}` is not a CVSS v4.0 vector (it must start with CVSS:4.0/)"
        ));
    }
    let vector = cvss::v4::Vector::from_str(text).map_err(|e| format!("{e}"))?;
    let score = vector.score();
    let severity = Severity::from_cvss(score.clone().severity());
    Ok(CvssScore {
        vector: text.to_owned(),
        score: round1(score.value()),
        severity,
    })
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_scores_like_the_calculator() {
        let critical = score_v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap();
        assert_eq!((critical.score, critical.severity), (9.8, Severity::Critical));
        let changed = score_v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H").unwrap();
        assert_eq!(changed.score, 10.0);
        let medium = score_v3("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:N").unwrap();
        assert_eq!((medium.score, medium.severity), (4.2, Severity::Medium));
        let none = score_v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N").unwrap();
        assert_eq!((none.score, none.severity), (0.0, Severity::None));
    }

    #[test]
    fn v4_scores() {
        let critical = score_v4("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap();
        assert_eq!((critical.score, critical.severity), (9.3, Severity::Critical));
    }

    #[test]
    fn invalid_vectors_name_the_metric() {
        let err = score_v3("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").unwrap_err();
        assert!(err.contains("AV"), "{err}");
        let err = score_v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H").unwrap_err();
        assert!(err.contains("metric A"), "{err}");
        let err = score_v3("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/ZZ:1").unwrap_err();
        assert!(err.contains("ZZ"), "{err}");
        assert!(score_v3("AV:N/AC:L").is_err());
        assert!(score_v3("CVSS:4.0/AV:N").is_err());
        let err = score_v4("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N").unwrap_err();
        assert!(err.contains("SA"), "{err}");
        let err = score_v4("CVSS:4.0/AV:Q/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N").unwrap_err();
        assert!(err.contains("AV"), "{err}");
    }
}
