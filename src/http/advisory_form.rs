//! The advisory form of the vendor screens and its translation to and from the API
//! body. Affected versions are written one constraint set per line:
//!
//! ```text
//! screenos: >=6.2.0r15 <6.2.0r19      fixed in 6.2.0r19
//! screenos: >=6.3.0r12 <=6.3.0r20     last affected 6.3.0r20, no fix named
//! junos: >=21.4R1                     no fix yet
//! screenos: =6.3.0r9                  one affected build
//! ```

use serde::{Deserialize, Serialize};

use crate::domain::advisory::{AdvisoryInput, AffectedInput, FieldError};
use crate::domain::range::RangeInput;

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct AdvisoryForm {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub cvss_v3: String,
    #[serde(default)]
    pub cvss_v4: String,
    #[serde(default)]
    pub cves: String,
    #[serde(default)]
    pub cwes: String,
    #[serde(default)]
    pub emergency: Option<String>,
    #[serde(default)]
    pub known_exploited: Option<String>,
    #[serde(default)]
    pub fix_deadline: String,
    #[serde(default)]
    pub affected: String,
    #[serde(default)]
    pub workarounds: String,
    #[serde(default)]
    pub references: String,
    #[serde(default)]
    pub acknowledgements: String,
    /// `WHITE` (everyone), `AMBER` or `RED` (the customers named below).
    #[serde(default)]
    pub tlp: String,
    /// Customer slugs, separated by spaces or commas.
    #[serde(default)]
    pub customers: String,
    #[serde(default)]
    pub change_summary: String,
}

fn words(text: &str) -> Option<Vec<String>> {
    let list: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

fn lines(text: &str) -> Option<Vec<String>> {
    let list: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

fn optional(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Parses the affected-versions text into per-product entries, in first-seen order.
pub fn parse_affected(text: &str) -> Result<Vec<AffectedInput>, FieldError> {
    let mut out: Vec<AffectedInput> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let error = |message: String| FieldError {
            field: "affected".into(),
            message: format!("affected line {}: {message}", n + 1),
        };
        let (product, constraints) = line
            .split_once(':')
            .ok_or_else(|| error("write `product: >=introduced <fixed` (or <=last, or =version)".into()))?;
        let product = product.trim().to_owned();
        let mut introduced = None;
        let mut fixed = None;
        let mut last = None;
        let mut exact = None;
        for token in constraints.split_whitespace() {
            let (slot, value) = if let Some(v) = token.strip_prefix(">=") {
                (&mut introduced, v)
            } else if let Some(v) = token.strip_prefix("<=") {
                (&mut last, v)
            } else if let Some(v) = token.strip_prefix('<') {
                (&mut fixed, v)
            } else if let Some(v) = token.strip_prefix('=') {
                (&mut exact, v)
            } else {
                return Err(error(format!("`{token}` is not >=, <, <= or = followed by a version")));
            };
            if slot.replace(value.to_owned()).is_some() || value.is_empty() {
                return Err(error(format!("`{token}` repeats or lacks a version")));
            }
        }
        let entry = match out.iter().position(|a| a.product == product) {
            Some(i) => &mut out[i],
            None => {
                out.push(AffectedInput {
                    product: product.clone(),
                    ranges: Vec::new(),
                    versions: Vec::new(),
                });
                let last_index = out.len() - 1;
                &mut out[last_index]
            }
        };
        match (introduced, exact) {
            (Some(introduced), None) => entry.ranges.push(RangeInput {
                introduced,
                fixed,
                last_affected: last,
            }),
            (None, Some(version)) if fixed.is_none() && last.is_none() => entry.versions.push(version),
            _ => {
                return Err(error(
                    "give either >=introduced (with an optional <fixed or <=last) or =version".into(),
                ))
            }
        }
    }
    Ok(out)
}

/// Writes affected entries back in the line syntax.
pub fn format_affected(affected: &[AffectedInput]) -> String {
    let mut text = String::new();
    for entry in affected {
        for range in &entry.ranges {
            text.push_str(&format!("{}: >={}", entry.product, range.introduced));
            if let Some(fixed) = &range.fixed {
                text.push_str(&format!(" <{fixed}"));
            }
            if let Some(last) = &range.last_affected {
                text.push_str(&format!(" <={last}"));
            }
            text.push('\n');
        }
        for version in &entry.versions {
            text.push_str(&format!("{}: ={version}\n", entry.product));
        }
    }
    text
}

impl AdvisoryForm {
    /// The API body this form describes.
    pub fn to_input(&self) -> Result<AdvisoryInput, FieldError> {
        let fix_deadline =
            optional(&self.fix_deadline).map(|d| if d.len() == 10 { format!("{d}T00:00:00Z") } else { d });
        let affected = parse_affected(&self.affected)?;
        Ok(AdvisoryInput {
            title: optional(&self.title),
            summary: optional(&self.summary),
            cvss_v3: optional(&self.cvss_v3),
            cvss_v4: optional(&self.cvss_v4),
            cves: words(&self.cves),
            cwes: words(&self.cwes),
            emergency: Some(self.emergency.is_some()),
            known_exploited: Some(self.known_exploited.is_some()),
            fix_deadline,
            affected: (!affected.is_empty()).then_some(affected),
            workarounds: optional(&self.workarounds),
            references: lines(&self.references),
            acknowledgements: optional(&self.acknowledgements),
            tlp: optional(&self.tlp),
            customers: words(&self.customers),
        })
    }

    /// The form for an existing body.
    pub fn from_input(input: &AdvisoryInput) -> Self {
        let join = |list: &Option<Vec<String>>, sep: &str| list.as_ref().map(|l| l.join(sep)).unwrap_or_default();
        AdvisoryForm {
            title: input.title.clone().unwrap_or_default(),
            summary: input.summary.clone().unwrap_or_default(),
            cvss_v3: input.cvss_v3.clone().unwrap_or_default(),
            cvss_v4: input.cvss_v4.clone().unwrap_or_default(),
            cves: join(&input.cves, " "),
            cwes: join(&input.cwes, " "),
            emergency: input.emergency.filter(|e| *e).map(|_| "on".into()),
            known_exploited: input.known_exploited.filter(|e| *e).map(|_| "on".into()),
            fix_deadline: input.fix_deadline.clone().unwrap_or_default(),
            affected: input.affected.as_deref().map(format_affected).unwrap_or_default(),
            workarounds: input.workarounds.clone().unwrap_or_default(),
            references: join(&input.references, "\n"),
            acknowledgements: input.acknowledgements.clone().unwrap_or_default(),
            tlp: input.tlp.clone().unwrap_or_default(),
            customers: join(&input.customers, " "),
            change_summary: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affected_lines_round_trip() {
        let text =
            "screenos: >=6.2.0r15 <6.2.0r19\nscreenos: >=6.3.0r12 <=6.3.0r20\n\njunos: >=21.4R1\nscreenos: =6.3.0r9\n";
        let parsed = parse_affected(text).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].ranges.len(), 2);
        assert_eq!(parsed[0].ranges[1].last_affected.as_deref(), Some("6.3.0r20"));
        assert_eq!(parsed[0].versions, ["6.3.0r9"]);
        assert_eq!(parse_affected(&format_affected(&parsed)).unwrap(), parsed);
    }

    #[test]
    fn affected_errors_name_the_line() {
        for (text, line) in [
            ("screenos >=1", "line 1"),
            ("a: >=1\nb: ~1", "line 2"),
            ("a: <2", "line 1"),
            ("a: =1 <2", "line 1"),
            ("a: >=1 >=2", "line 1"),
        ] {
            let err = parse_affected(text).unwrap_err();
            assert!(err.message.contains(line), "{text}: {}", err.message);
            assert_eq!(err.field, "affected");
        }
    }

    #[test]
    fn form_to_input_and_back() {
        let form = AdvisoryForm {
            title: " Backdoor ".into(),
            cves: "CVE-2015-7755, CVE-2015-7756".into(),
            emergency: Some("on".into()),
            fix_deadline: "2026-12-05".into(),
            references: "https://a.example\n\nhttps://b.example".into(),
            affected: "screenos: >=6.3.0r12 <6.3.0r21".into(),
            ..AdvisoryForm::default()
        };
        let input = form.to_input().unwrap();
        assert_eq!(input.title.as_deref(), Some("Backdoor"));
        assert_eq!(input.cves.as_ref().unwrap().len(), 2);
        assert_eq!(input.fix_deadline.as_deref(), Some("2026-12-05T00:00:00Z"));
        assert_eq!(input.references.as_ref().unwrap().len(), 2);
        assert_eq!(input.emergency, Some(true));
        let back = AdvisoryForm::from_input(&input);
        assert_eq!(back.to_input().unwrap(), input);
    }
}
