//! Advisories: the body a publisher writes ([`AdvisoryInput`]) and its validation
//! into a well-formed [`Advisory`]; `document` renders a published revision as the
//! canonical JSON that is signed and served.

mod document;

pub use document::{canonical_json, revision_document, rfc3339, RevisionEntry, RevisionMeta};

use std::collections::BTreeSet;

pub use crate::domain::field::FieldError;
pub use crate::domain::state::{RevisionStatus, Tlp};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cvss::{score_v3, score_v4, CvssScore, Severity};
use super::range::{RangeInput, VersionRange};
use super::text::{TextRule, PROSE, TITLE};
use super::version::{Version, VersionScheme};

/// Most list entries (CVEs, references, ranges …) accepted per list.
const MAX_LIST: usize = 200;

/// The affected versions of one product, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AffectedInput {
    pub product: String,
    #[serde(default)]
    pub ranges: Vec<RangeInput>,
    #[serde(default)]
    pub versions: Vec<String>,
}

/// An advisory body as a publisher writes it. Every field is optional so that a draft
/// can be written in steps; publishing needs the complete set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvisoryInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v3: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss_v4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cves: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_exploited: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_deadline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affected: Option<Vec<AffectedInput>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workarounds: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgements: Option<String>,
    /// `WHITE` (the default: everyone), or `AMBER` / `RED`: only `customers` read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<String>,
    /// The slugs of the customers a TLP:AMBER or TLP:RED advisory is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<Vec<String>>,
}

/// A product as the advisory rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductInfo {
    pub slug: String,
    pub name: String,
    pub scheme: VersionScheme,
}

/// How complete the body must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// A draft: a title, and whatever else is given must be well-formed.
    Draft,
    /// A revision to publish: every field a reader needs.
    Publish,
}

/// The affected versions of one product, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Affected {
    pub product: ProductInfo,
    pub ranges: Vec<VersionRange>,
    pub versions: Vec<Version>,
}

impl Affected {
    /// Whether `version` of this product is affected; with the range it fell in.
    pub fn matches(&self, version: &Version) -> Option<Match<'_>> {
        if let Some(range) = self.ranges.iter().find(|r| r.contains(version)) {
            return Some(Match::Range(range));
        }
        self.versions.iter().any(|v| v == version).then_some(Match::Listed)
    }

    /// Fixed releases named by the ranges, in order.
    pub fn fixed_versions(&self) -> Vec<&Version> {
        let mut fixed: Vec<&Version> = self.ranges.iter().filter_map(VersionRange::fixed).collect();
        fixed.sort();
        fixed.dedup();
        fixed
    }
}

/// Why a version is affected.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Match<'a> {
    Range(&'a VersionRange),
    Listed,
}

/// A validated advisory body.
#[derive(Clone, Debug, PartialEq)]
pub struct Advisory {
    pub title: String,
    pub summary: String,
    pub cvss_v3: Option<CvssScore>,
    pub cvss_v4: Option<CvssScore>,
    pub cves: Vec<String>,
    pub cwes: Vec<String>,
    pub emergency: bool,
    pub known_exploited: bool,
    pub fix_deadline: Option<DateTime<Utc>>,
    pub affected: Vec<Affected>,
    pub workarounds: String,
    pub references: Vec<String>,
    pub acknowledgements: String,
    pub tlp: Tlp,
    /// The customers (slugs, in order) a restricted advisory is for; empty for WHITE.
    pub readers: Vec<String>,
}

/// How one advisory affects one version of a product.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The nearest release on the version's own train that is no longer affected.
    pub fixed_on_train: Option<Version>,
    /// Fixed releases on other trains, for a move across trains.
    pub fixed_elsewhere: Vec<Version>,
}

impl Advisory {
    /// Whether `version` of `product` is affected, and where the fixes are.
    pub fn finding(&self, product: &str, version: &Version) -> Option<Finding> {
        let affected = self.affected.iter().find(|a| a.product.slug == product)?;
        affected.matches(version)?;
        let fixes = affected.fixed_versions();
        let fixed_on_train = fixes
            .iter()
            .filter(|f| f.same_train(version) && **f > version && affected.matches(f).is_none())
            .min()
            .map(|f| (*f).clone());
        let fixed_elsewhere = fixes
            .iter()
            .filter(|f| !f.same_train(version))
            .map(|f| (*f).clone())
            .collect();
        Some(Finding {
            fixed_on_train,
            fixed_elsewhere,
        })
    }

    /// The headline score: CVSS v4.0 when given, else v3.x.
    pub fn headline(&self) -> Option<&CvssScore> {
        self.cvss_v4.as_ref().or(self.cvss_v3.as_ref())
    }

    pub fn severity(&self) -> Option<Severity> {
        self.headline().map(|s| s.severity)
    }

    /// Lower-cased text that `q=` searches: title, summary, CVEs and products.
    pub fn search_text(&self) -> String {
        let mut parts = vec![self.title.clone(), self.summary.clone()];
        parts.extend(self.cves.iter().cloned());
        parts.extend(
            self.affected
                .iter()
                .flat_map(|a| [a.product.slug.clone(), a.product.name.clone()]),
        );
        parts.join(" ").to_lowercase()
    }
}

fn text(field: &str, value: Option<&String>, rule: TextRule, required: bool) -> Result<String, FieldError> {
    rule.check(field, value.map_or("", String::as_str), required)
}

fn list<'a>(field: &str, values: Option<&'a Vec<String>>) -> Result<&'a [String], FieldError> {
    let values = values.map(Vec::as_slice).unwrap_or(&[]);
    if values.len() > MAX_LIST {
        return Err(FieldError::new(
            field,
            format!("{field} has more than {MAX_LIST} entries"),
        ));
    }
    Ok(values)
}

/// `CVE-YYYY-NNNN…`, upper-cased.
pub fn parse_cve(text: &str) -> Result<String, String> {
    let cve = text.trim().to_uppercase();
    let valid = cve
        .strip_prefix("CVE-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(year, number)| {
            year.len() == 4
                && year.bytes().all(|b| b.is_ascii_digit())
                && number.len() >= 4
                && number.len() <= 19
                && number.bytes().all(|b| b.is_ascii_digit())
        });
    if valid {
        Ok(cve)
    } else {
        Err(format!("`{text}` is not a CVE id (CVE-YYYY-NNNN)"))
    }
}

/// `CWE-N`, upper-cased.
pub fn parse_cwe(text: &str) -> Result<String, String> {
    let cwe = text.trim().to_uppercase();
    let valid = cwe
        .strip_prefix("CWE-")
        .is_some_and(|n| !n.is_empty() && n.len() <= 6 && n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'));
    if valid {
        Ok(cwe)
    } else {
        Err(format!("`{text}` is not a CWE id (CWE-N)"))
    }
}

fn unique(
    field: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<String>, FieldError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(values.len());
    for (i, raw) in values.iter().enumerate() {
        let value = parse(raw).map_err(|e| FieldError::new(format!("{field}[{i}]"), e))?;
        if !seen.insert(value.clone()) {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("{value} is listed twice"),
            ));
        }
        out.push(value);
    }
    Ok(out)
}

fn reference(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url.to_string()),
        _ => Err(format!("`{text}` must be an http:// or https:// URL")),
    }
}

fn affected(index: usize, input: &AffectedInput, product: Option<ProductInfo>) -> Result<Affected, FieldError> {
    let at = |rest: &str| format!("affected[{index}].{rest}");
    let product =
        product.ok_or_else(|| FieldError::new(at("product"), format!("there is no product `{}`", input.product)))?;
    if input.ranges.len() > MAX_LIST || input.versions.len() > MAX_LIST {
        return Err(FieldError::new(
            at("ranges"),
            format!("at most {MAX_LIST} ranges and {MAX_LIST} versions per product"),
        ));
    }
    let mut ranges: Vec<VersionRange> = Vec::with_capacity(input.ranges.len());
    for (i, raw) in input.ranges.iter().enumerate() {
        let range = VersionRange::parse(product.scheme, raw)
            .map_err(|(end, e)| FieldError::new(at(&format!("ranges[{i}].{end}")), e))?;
        if let Some(j) = ranges.iter().position(|earlier| earlier.overlaps(&range)) {
            return Err(FieldError::new(
                at(&format!("ranges[{i}]")),
                format!("range {} overlaps range {j} ({})", range.to_vers(), ranges[j].to_vers()),
            ));
        }
        ranges.push(range);
    }
    let mut versions: Vec<Version> = Vec::with_capacity(input.versions.len());
    for (i, raw) in input.versions.iter().enumerate() {
        let version = product
            .scheme
            .parse(raw)
            .map_err(|e| FieldError::new(at(&format!("versions[{i}]")), e))?;
        if versions.contains(&version) {
            return Err(FieldError::new(
                at(&format!("versions[{i}]")),
                format!("{version} is listed twice"),
            ));
        }
        if let Some(range) = ranges.iter().find(|r| r.contains(&version)) {
            return Err(FieldError::new(
                at(&format!("versions[{i}]")),
                format!("{version} already lies in range {}", range.to_vers()),
            ));
        }
        versions.push(version);
    }
    if ranges.is_empty() && versions.is_empty() {
        return Err(FieldError::new(
            at("ranges"),
            "an affected product needs at least one range or version",
        ));
    }
    Ok(Affected {
        product,
        ranges,
        versions,
    })
}

impl AdvisoryInput {
    /// Checks the body; `product` resolves product slugs.
    pub fn validate(
        &self,
        product: impl Fn(&str) -> Option<ProductInfo>,
        completeness: Completeness,
    ) -> Result<Advisory, FieldError> {
        let publish = completeness == Completeness::Publish;
        let title = text("title", self.title.as_ref(), TITLE, true)?;
        let summary = text("summary", self.summary.as_ref(), PROSE, publish)?;
        let cvss_v3 = self
            .cvss_v3
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| score_v3(v).map_err(|e| FieldError::new("cvss_v3", e)))
            .transpose()?;
        let cvss_v4 = self
            .cvss_v4
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(|v| score_v4(v).map_err(|e| FieldError::new("cvss_v4", e)))
            .transpose()?;
        if publish && cvss_v3.is_none() && cvss_v4.is_none() {
            return Err(FieldError::new(
                "cvss_v3",
                "a published advisory needs a CVSS v3.1 or v4.0 vector",
            ));
        }
        let cves = unique("cves", list("cves", self.cves.as_ref())?, parse_cve)?;
        let cwes = unique("cwes", list("cwes", self.cwes.as_ref())?, parse_cwe)?;
        let fix_deadline = self
            .fix_deadline
            .as_deref()
            .filter(|d| !d.trim().is_empty())
            .map(|d| {
                DateTime::parse_from_rfc3339(d.trim())
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| {
                        FieldError::new(
                            "fix_deadline",
                            format!("`{d}` is not an RFC 3339 time such as 2026-12-05T00:00:00Z"),
                        )
                    })
            })
            .transpose()?;
        let inputs = self.affected.as_deref().unwrap_or(&[]);
        if inputs.len() > MAX_LIST {
            return Err(FieldError::new("affected", format!("at most {MAX_LIST} products")));
        }
        let mut affected_list: Vec<Affected> = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let checked = affected(i, input, product(&input.product))?;
            if affected_list.iter().any(|a| a.product.slug == checked.product.slug) {
                return Err(FieldError::new(
                    format!("affected[{i}].product"),
                    format!("product `{}` is listed twice", input.product),
                ));
            }
            affected_list.push(checked);
        }
        if publish && affected_list.is_empty() {
            return Err(FieldError::new(
                "affected",
                "a published advisory names at least one affected product",
            ));
        }
        let references = unique("references", list("references", self.references.as_ref())?, reference)?;
        let (tlp, readers) = self.audience()?;
        Ok(Advisory {
            title,
            summary,
            cvss_v3,
            cvss_v4,
            cves,
            cwes,
            emergency: self.emergency.unwrap_or(false),
            known_exploited: self.known_exploited.unwrap_or(false),
            fix_deadline,
            affected: affected_list,
            workarounds: text("workarounds", self.workarounds.as_ref(), PROSE, false)?,
            references,
            acknowledgements: text("acknowledgements", self.acknowledgements.as_ref(), PROSE, false)?,
            tlp,
            readers,
        })
    }

    /// Who may read it: the TLP label and, for AMBER and RED, the customers named.
    fn audience(&self) -> Result<(Tlp, Vec<String>), FieldError> {
        let tlp = match self.tlp.as_deref().map(str::trim) {
            None | Some("") => Tlp::White,
            Some(label) => label.to_uppercase().parse::<Tlp>().map_err(|_| {
                FieldError::new(
                    "tlp",
                    format!(
                        "`{label}` is not offered: an advisory is WHITE (everyone) or AMBER or RED (the customers it names)"
                    ),
                )
            })?,
        };
        let customers = unique("customers", list("customers", self.customers.as_ref())?, |slug| {
            slug.trim()
                .parse::<crate::domain::Slug>()
                .map(|s| s.as_str().to_owned())
                .map_err(|e| format!("not a customer slug: {e}"))
        })?;
        match (tlp.restricted(), customers.is_empty()) {
            (true, true) => Err(FieldError::new(
                "customers",
                format!("a TLP:{tlp} advisory names the customers who may read it"),
            )),
            (false, false) => Err(FieldError::new(
                "customers",
                "customers name who may read a TLP:AMBER or TLP:RED advisory; this one is TLP:WHITE, for everyone",
            )),
            _ => Ok((tlp, customers)),
        }
    }

    /// Applies a JSON merge patch (RFC 7386): given fields replace, `null` clears.
    pub fn merge_patch(&self, patch: &Value) -> Result<AdvisoryInput, FieldError> {
        let Value::Object(changes) = patch else {
            return Err(FieldError::new("", "a patch is a JSON object"));
        };
        let mut current = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        for (key, value) in changes {
            if value.is_null() {
                current.remove(key);
            } else {
                current.insert(key.clone(), value.clone());
            }
        }
        serde_json::from_value(Value::Object(current)).map_err(|e| FieldError::new("", format!("invalid body: {e}")))
    }
}

/// Rebuilds the input an advisory was validated from (for revising a published one).
pub fn input_of(advisory: &Advisory) -> AdvisoryInput {
    AdvisoryInput {
        title: Some(advisory.title.clone()),
        summary: Some(advisory.summary.clone()),
        cvss_v3: advisory.cvss_v3.as_ref().map(|s| s.vector.clone()),
        cvss_v4: advisory.cvss_v4.as_ref().map(|s| s.vector.clone()),
        cves: Some(advisory.cves.clone()),
        cwes: Some(advisory.cwes.clone()),
        emergency: Some(advisory.emergency),
        known_exploited: Some(advisory.known_exploited),
        fix_deadline: advisory.fix_deadline.map(rfc3339),
        affected: Some(
            advisory
                .affected
                .iter()
                .map(|a| AffectedInput {
                    product: a.product.slug.clone(),
                    ranges: a.ranges.iter().map(VersionRange::to_input).collect(),
                    versions: a.versions.iter().map(ToString::to_string).collect(),
                })
                .collect(),
        ),
        workarounds: Some(advisory.workarounds.clone()),
        references: Some(advisory.references.clone()),
        acknowledgements: Some(advisory.acknowledgements.clone()),
        tlp: advisory.tlp.restricted().then(|| advisory.tlp.as_str().to_owned()),
        customers: advisory.tlp.restricted().then(|| advisory.readers.clone()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn screenos() -> ProductInfo {
        ProductInfo {
            slug: "screenos".into(),
            name: "ScreenOS".into(),
            scheme: VersionScheme::Vendor,
        }
    }

    pub fn lookup(slug: &str) -> Option<ProductInfo> {
        (slug == "screenos").then(screenos)
    }

    pub fn backdoor() -> AdvisoryInput {
        serde_json::from_value(serde_json::json!({
            "title": "Unauthorized code in ScreenOS",
            "summary": "Administrative access and VPN decryption.",
            "cvss_v3": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
            "cves": ["CVE-2015-7755", "cve-2015-7756"],
            "cwes": ["CWE-798"],
            "emergency": true,
            "fix_deadline": "2026-12-05T00:00:00Z",
            "affected": [{"product": "screenos", "ranges": [
                {"introduced": "6.2.0r15", "fixed": "6.2.0r19"},
                {"introduced": "6.3.0r12", "fixed": "6.3.0r21"}]}],
            "references": ["https://kb.example.com/JSA10713"]
        }))
        .unwrap()
    }

    #[test]
    fn the_backdoor_advisory_validates_and_scores() {
        let advisory = backdoor().validate(lookup, Completeness::Publish).unwrap();
        assert_eq!(advisory.severity(), Some(Severity::Critical));
        assert_eq!(advisory.cves, ["CVE-2015-7755", "CVE-2015-7756"]);
        let v = |t: &str| VersionScheme::Vendor.parse(t).unwrap();
        let screenos = &advisory.affected[0];
        assert!(matches!(screenos.matches(&v("6.3.0r20")), Some(Match::Range(r)) if r.fixed() == Some(&v("6.3.0r21"))));
        assert!(screenos.matches(&v("6.3.0r21")).is_none());
        assert_eq!(screenos.fixed_versions(), [&v("6.2.0r19"), &v("6.3.0r21")]);
    }

    #[test]
    fn findings_name_the_nearest_fix_on_the_train() {
        let advisory = backdoor().validate(lookup, Completeness::Publish).unwrap();
        let v = |t: &str| VersionScheme::Vendor.parse(t).unwrap();
        let finding = advisory.finding("screenos", &v("6.2.0r16")).unwrap();
        assert_eq!(finding.fixed_on_train, Some(v("6.2.0r19")));
        assert_eq!(finding.fixed_elsewhere, [v("6.3.0r21")]);
        assert!(advisory.finding("screenos", &v("6.2.0r19")).is_none());
        assert!(advisory.finding("screenos", &v("6.2.0r14")).is_none());
        assert!(advisory.finding("junos", &v("6.2.0r16")).is_none());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (
                serde_json::json!({"cvss_v3": "CVSS:3.1/AV:Z/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}),
                "cvss_v3",
            ),
            (serde_json::json!({"cves": ["CVE-15-1"]}), "cves[0]"),
            (
                serde_json::json!({"cves": ["CVE-2015-7755", "CVE-2015-7755"]}),
                "cves[1]",
            ),
            (serde_json::json!({"cwes": ["798"]}), "cwes[0]"),
            (serde_json::json!({"fix_deadline": "next week"}), "fix_deadline"),
            (
                serde_json::json!({"references": ["javascript:alert(1)"]}),
                "references[0]",
            ),
            (
                serde_json::json!({"affected": [{"product": "junos", "ranges": [{"introduced": "1.0R1"}]}]}),
                "affected[0].product",
            ),
            (
                serde_json::json!({"affected": [{"product": "screenos", "ranges": [{"introduced": "6.3.0r21", "fixed": "6.3.0r12"}]}]}),
                "affected[0].ranges[0].fixed",
            ),
            (
                serde_json::json!({"affected": [{"product": "screenos", "ranges": [
                    {"introduced": "6.3.0r12", "fixed": "6.3.0r21"}, {"introduced": "6.3.0r20"}]}]}),
                "affected[0].ranges[1]",
            ),
            (
                serde_json::json!({"affected": [{"product": "screenos", "versions": ["6.3.0r9", "6.3.0R9"]}]}),
                "affected[0].versions[1]",
            ),
            (
                serde_json::json!({"affected": [{"product": "screenos"}]}),
                "affected[0].ranges",
            ),
            (serde_json::json!({"title": "  "}), "title"),
        ];
        for (patch, field) in cases {
            let input = backdoor().merge_patch(&patch).unwrap();
            let err = input.validate(lookup, Completeness::Publish).unwrap_err();
            assert_eq!(err.field, field, "{patch}: {}", err.message);
        }
        let no_vector = backdoor().merge_patch(&serde_json::json!({"cvss_v3": null})).unwrap();
        assert_eq!(
            no_vector.validate(lookup, Completeness::Publish).unwrap_err().field,
            "cvss_v3"
        );
        assert!(
            no_vector.validate(lookup, Completeness::Draft).is_ok(),
            "a draft may lack a vector"
        );
    }

    #[test]
    fn canonical_json_is_stable_and_sorted() {
        let a = serde_json::json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        assert_eq!(canonical_json(&a), r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#);
        let advisory = backdoor().validate(lookup, Completeness::Publish).unwrap();
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let meta = RevisionMeta {
            id: "PW-2026-0001".into(),
            revision: 1,
            status: RevisionStatus::Published,
            first_published: at,
            published: at,
            change_summary: "Initial publication".into(),
            history: vec![],
            withdrawn_reason: None,
            key_id: "ABCD".into(),
        };
        let one = canonical_json(&revision_document(&advisory, &meta));
        let two = canonical_json(&revision_document(&advisory, &meta));
        assert_eq!(one, two);
        assert!(
            one.starts_with(r#"{"acknowledgements":"","affected":[{"fixed_versions":["6.2.0r19","6.3.0r21"]"#),
            "{one}"
        );
    }

    #[test]
    fn input_round_trips_through_validation() {
        let advisory = backdoor().validate(lookup, Completeness::Publish).unwrap();
        let again = input_of(&advisory).validate(lookup, Completeness::Publish).unwrap();
        assert_eq!(again, advisory);
    }

    #[test]
    fn merge_patch_replaces_and_clears() {
        let patched = backdoor()
            .merge_patch(&serde_json::json!({"title": "New title", "workarounds": "Disable SSH", "cwes": null}))
            .unwrap();
        assert_eq!(patched.title.as_deref(), Some("New title"));
        assert_eq!(patched.workarounds.as_deref(), Some("Disable SSH"));
        assert_eq!(patched.cwes, None);
        assert!(
            backdoor().merge_patch(&serde_json::json!({"titel": "x"})).is_err(),
            "unknown fields are refused"
        );
    }
}
