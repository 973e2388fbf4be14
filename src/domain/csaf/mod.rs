//! CSAF 2.0 `csaf_security_advisory` documents built from a published revision, and
//! the provider names and paths of the CSAF distribution (one folder per year under
//! the TLP:WHITE directory). `provider` renders what a trusted provider serves around
//! the documents; `vex` a customer's VEX of its own fleet.

pub mod provider;
pub mod vex;

use serde_json::{json, Value};

use super::advisory::{rfc3339, Advisory, RevisionMeta, RevisionStatus};
use super::cwe;
use super::range::Upper;
use super::version::VersionScheme;

/// Who publishes, as CSAF names it.
#[derive(Clone, Debug)]
pub struct Publisher {
    pub name: String,
    /// The publisher's namespace: the server's public URL.
    pub namespace: String,
}

/// The CSAF file name of an advisory id: lower case, other characters as `_`.
pub fn file_name(id: &str) -> String {
    let stem: String = id
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '+' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}.json")
}

/// The path of a document below the distribution directory: `<year>/<file>`.
pub fn document_path(id: &str, initial_year: i32) -> String {
    format!("{initial_year}/{}", file_name(id))
}

/// Where the TLP:WHITE distribution lives below the public URL.
pub const DIRECTORY: &str = ".well-known/csaf/white";

/// Where the distribution of `tlp` lives below the public URL: TLP:AMBER and
/// TLP:RED documents on paths of their own, answered only to those they are for.
pub fn directory(tlp: crate::domain::Tlp) -> String {
    format!(".well-known/csaf/{}", tlp.folder())
}

fn vers_scheme(scheme: VersionScheme) -> &'static str {
    match scheme {
        VersionScheme::Vendor => "generic",
        VersionScheme::Semver => "semver",
    }
}

struct Products {
    tree: Vec<Value>,
    affected: Vec<String>,
    fixed: Vec<String>,
    /// Remediations per product: (category, details, product ids).
    remediations: Vec<(String, String, Vec<String>)>,
}

fn products(advisory: &Advisory) -> Products {
    let mut out = Products {
        tree: Vec::new(),
        affected: Vec::new(),
        fixed: Vec::new(),
        remediations: Vec::new(),
    };
    for affected in &advisory.affected {
        let product = &affected.product;
        let mut branches = Vec::new();
        let mut no_fix = Vec::new();
        for (n, range) in affected.ranges.iter().enumerate() {
            let id = format!("{}-range-{}", product.slug, n + 1);
            let vers = format!("vers:{}/{}", vers_scheme(product.scheme), range.to_vers());
            branches.push(json!({
                "category": "product_version_range",
                "name": vers,
                "product": {"name": format!("{} {}", product.name, range.to_vers()), "product_id": id},
            }));
            out.affected.push(id.clone());
            match range.upper() {
                Upper::Fixed(fixed) => out.remediations.push((
                    "vendor_fix".into(),
                    format!(
                        "Update {} to {} or later on the {} release train.",
                        product.name,
                        fixed,
                        fixed.train()
                    ),
                    vec![id],
                )),
                Upper::LastAffected(_) | Upper::Open => no_fix.push(id),
            }
        }
        for version in &affected.versions {
            let id = format!("{}-affected-{}", product.slug, version);
            branches.push(json!({
                "category": "product_version",
                "name": version.to_string(),
                "product": {"name": format!("{} {}", product.name, version), "product_id": id},
            }));
            out.affected.push(id.clone());
            no_fix.push(id);
        }
        for fixed in affected.fixed_versions() {
            let id = format!("{}-fixed-{}", product.slug, fixed);
            branches.push(json!({
                "category": "product_version",
                "name": fixed.to_string(),
                "product": {"name": format!("{} {}", product.name, fixed), "product_id": id},
            }));
            out.fixed.push(id);
        }
        if !no_fix.is_empty() {
            out.remediations.push((
                "none_available".into(),
                format!("No fixed release of {} is named for these versions yet.", product.name),
                no_fix,
            ));
        }
        out.tree
            .push(json!({"category": "product_name", "name": product.name, "branches": branches}));
    }
    out
}

/// The first of the advisory's CWEs that the catalogue names: CSAF holds one a
/// vulnerability, the others go into a note.
fn known_cwe(advisory: &Advisory) -> Option<(&String, &'static str)> {
    advisory.cwes.iter().find_map(|id| cwe::name(id).map(|name| (id, name)))
}

/// What identifies each vulnerability of the advisory: one per CVE, or — with none —
/// one named by the advisory's id and title; each with the catalogued CWE.
pub(crate) fn vulnerability_ids(advisory: &Advisory, public_id: &str) -> Vec<serde_json::Map<String, Value>> {
    let cwe = known_cwe(advisory).map(|(id, name)| json!({"id": id, "name": name}));
    let one = |key: &str, value: Value| {
        let mut map = serde_json::Map::new();
        map.insert(key.into(), value);
        if let Some(cwe) = &cwe {
            map.insert("cwe".into(), cwe.clone());
        }
        map
    };
    if advisory.cves.is_empty() {
        let mut map = one("ids", json!([{"system_name": "advisory", "text": public_id}]));
        map.insert("title".into(), json!(advisory.title));
        vec![map]
    } else {
        advisory.cves.iter().map(|cve| one("cve", json!(cve))).collect()
    }
}

/// The CVSS v3 score of the advisory for `products` (none when there are none).
pub(crate) fn scores(advisory: &Advisory, products: &[String]) -> Vec<Value> {
    let (Some(v3), false) = (&advisory.cvss_v3, products.is_empty()) else {
        return Vec::new();
    };
    let version = if v3.vector.starts_with("CVSS:3.0/") {
        "3.0"
    } else {
        "3.1"
    };
    vec![json!({
        "cvss_v3": {
            "version": version,
            "vectorString": v3.vector,
            "baseScore": v3.score,
            "baseSeverity": v3.severity.as_str().to_uppercase(),
        },
        "products": products,
    })]
}

/// Who may read the document: everyone, or the customers a restricted one names.
fn distribution(advisory: &Advisory) -> Value {
    let tlp = json!({"label": advisory.tlp.as_str(), "url": "https://www.first.org/tlp/"});
    if advisory.tlp.restricted() {
        json!({
            "text": format!("For the customers {} only, under TLP:{}.", advisory.readers.join(", "), advisory.tlp),
            "tlp": tlp,
        })
    } else {
        json!({"tlp": tlp})
    }
}

/// The CSAF 2.0 document of one revision.
pub fn document(advisory: &Advisory, meta: &RevisionMeta, publisher: &Publisher, self_url: &str) -> Value {
    let products = products(advisory);
    let mut history: Vec<Value> = meta
        .history
        .iter()
        .map(|h| json!({"date": h.date, "number": h.revision.to_string(), "summary": h.summary}))
        .collect();
    history.push(
        json!({"date": rfc3339(meta.published), "number": meta.revision.to_string(), "summary": meta.change_summary}),
    );

    let mut doc_notes = vec![json!({"category": "summary", "title": "Summary", "text": advisory.summary})];
    if meta.status == RevisionStatus::Withdrawn {
        let reason = meta.withdrawn_reason.clone().unwrap_or_default();
        doc_notes.push(json!({"category": "general", "title": "Withdrawn", "text": format!("This advisory has been withdrawn: {reason}")}));
    }
    if advisory.emergency {
        doc_notes.push(json!({"category": "general", "title": "Out-of-cycle advisory", "text": "This advisory was published out of the regular cycle because of its urgency."}));
    }
    if !advisory.acknowledgements.is_empty() {
        doc_notes.push(json!({"category": "general", "title": "Acknowledgements", "text": advisory.acknowledgements}));
    }
    let mut references = vec![json!({"category": "self", "summary": "This advisory in CSAF format", "url": self_url})];
    references.extend(
        advisory
            .references
            .iter()
            .map(|url| json!({"category": "external", "summary": "Reference", "url": url})),
    );

    let mut document = json!({
        "category": "csaf_security_advisory",
        "csaf_version": "2.0",
        "distribution": distribution(advisory),
        "lang": "en",
        "notes": doc_notes,
        "publisher": {"category": "vendor", "name": publisher.name, "namespace": publisher.namespace},
        "references": references,
        "title": advisory.title,
        "tracking": {
            "current_release_date": rfc3339(meta.published),
            "generator": {"engine": {"name": "patchwarden", "version": env!("CARGO_PKG_VERSION")}},
            "id": meta.id,
            "initial_release_date": rfc3339(meta.first_published),
            "revision_history": history,
            "status": "final",
            "version": meta.revision.to_string(),
        },
    });
    if let (Some(severity), Value::Object(map)) = (advisory.severity(), &mut document) {
        map.insert("aggregate_severity".into(), json!({"text": severity.as_str()}));
    }

    let mut remediations: Vec<Value> = products
        .remediations
        .iter()
        .map(|(category, details, ids)| json!({"category": category, "details": details, "product_ids": ids}))
        .collect();
    if !advisory.workarounds.is_empty() && !products.affected.is_empty() {
        remediations
            .push(json!({"category": "workaround", "details": advisory.workarounds, "product_ids": products.affected}));
    }
    let scores = scores(advisory, &products.affected);
    let mut notes = vec![json!({"category": "description", "title": "Description", "text": advisory.summary})];
    if let Some(v4) = &advisory.cvss_v4 {
        notes.push(json!({"category": "other", "title": "CVSS v4.0", "text": format!("{} (base score {}, {})", v4.vector, v4.score, v4.severity)}));
    }
    let known_cwe = known_cwe(advisory);
    let other_cwes: Vec<&String> = advisory
        .cwes
        .iter()
        .filter(|id| known_cwe.map(|(k, _)| k) != Some(*id))
        .collect();
    if !other_cwes.is_empty() {
        let list: Vec<&str> = other_cwes.iter().map(|s| s.as_str()).collect();
        notes.push(json!({"category": "other", "title": "Weaknesses", "text": list.join(", ")}));
    }
    let mut threats = Vec::new();
    if advisory.known_exploited && !products.affected.is_empty() {
        threats.push(json!({"category": "exploit_status", "details": "This vulnerability is known to be exploited.", "product_ids": products.affected}));
    }

    let vulnerability = |ids: serde_json::Map<String, Value>| {
        let mut v = json!({
            "notes": notes,
            "product_status": {},
            "remediations": remediations,
        });
        if let Value::Object(map) = &mut v {
            map.extend(ids);
            let mut status = serde_json::Map::new();
            if !products.affected.is_empty() {
                status.insert("known_affected".into(), json!(products.affected));
            }
            if !products.fixed.is_empty() {
                status.insert("fixed".into(), json!(products.fixed));
            }
            map.insert("product_status".into(), Value::Object(status));
            if !scores.is_empty() {
                map.insert("scores".into(), json!(scores));
            }
            if !threats.is_empty() {
                map.insert("threats".into(), json!(threats));
            }
        }
        v
    };
    let vulnerabilities: Vec<Value> = vulnerability_ids(advisory, &meta.id)
        .into_iter()
        .map(vulnerability)
        .collect();

    json!({
        "document": document,
        "product_tree": {"branches": [{"category": "vendor", "name": publisher.name, "branches": products.tree}]},
        "vulnerabilities": vulnerabilities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::advisory::tests::{backdoor, lookup};
    use crate::domain::advisory::Completeness;

    #[test]
    fn file_names_follow_the_csaf_rule() {
        assert_eq!(file_name("PW-2026-0001"), "pw-2026-0001.json");
        assert_eq!(file_name("ACME:SA/2026.1"), "acme_sa_2026_1.json");
        assert_eq!(document_path("PW-2026-0001", 2026), "2026/pw-2026-0001.json");
    }

    #[test]
    fn every_affected_product_has_a_status_and_a_remediation() {
        let advisory = backdoor().validate(lookup, Completeness::Publish).unwrap();
        let at = chrono::Utc::now();
        let meta = RevisionMeta {
            id: "PW-2026-0001".into(),
            revision: 1,
            status: RevisionStatus::Published,
            first_published: at,
            published: at,
            change_summary: "Initial".into(),
            history: vec![],
            withdrawn_reason: None,
            key_id: "K".into(),
        };
        let publisher = Publisher {
            name: "Example".into(),
            namespace: "https://example.com".into(),
        };
        let doc = document(&advisory, &meta, &publisher, "https://example.com/x.json");
        let vulns = doc["vulnerabilities"].as_array().unwrap();
        assert_eq!(vulns.len(), 2, "one vulnerability per CVE");
        let affected = vulns[0]["product_status"]["known_affected"].as_array().unwrap();
        assert_eq!(affected.len(), 2);
        for id in affected {
            let covered = vulns[0]["remediations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["product_ids"].as_array().unwrap().contains(id));
            assert!(covered, "{id} has no remediation");
        }
        assert_eq!(vulns[0]["cwe"]["name"], "Use of Hard-coded Credentials");
        assert_eq!(vulns[0]["scores"][0]["cvss_v3"]["baseSeverity"], "CRITICAL");
        assert_eq!(doc["document"]["tracking"]["version"], "1");
    }
}
