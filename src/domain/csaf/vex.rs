//! A CSAF 2.0 VEX (profile `csaf_vex`, §4.5) of one advisory for one customer's
//! fleet: the product tree holds the versions its devices run, and each version is
//! `known_affected` (with the fix to install and the deadline), `fixed`, or
//! `known_not_affected` (with the impact statement of why), as the advisory's ranges
//! place it. It is TLP:AMBER, for that customer only, and `interim`: it follows the
//! fleet, so the same advisory revision gives a new document as devices change.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{vulnerability_ids, Publisher};
use crate::domain::advisory::{rfc3339, Advisory, RevisionEntry};
use crate::domain::fleet::{classify, explain};
use crate::domain::version::Version;
use crate::domain::ExposureState;

/// One version the customer's devices run, of a product the advisory names.
#[derive(Clone, Debug)]
pub struct FleetVersion {
    pub product: String,
    /// As the devices state it.
    pub version: String,
    /// `None` when it cannot be read in the product's version scheme.
    pub parsed: Option<Version>,
    pub devices: i64,
}

/// A published patch that fixes the advisory.
#[derive(Clone, Debug)]
pub struct Fix {
    pub product: String,
    pub patch_id: String,
    pub version: String,
    pub url: String,
}

/// Everything one VEX is made of.
pub struct VexInput<'a> {
    pub advisory: &'a Advisory,
    pub public_id: &'a str,
    /// Every revision of the advisory, oldest first.
    pub revisions: &'a [RevisionEntry],
    pub first_published: DateTime<Utc>,
    pub advisory_url: &'a str,
    pub self_url: &'a str,
    pub publisher: &'a Publisher,
    pub customer_name: &'a str,
    pub customer_slug: &'a str,
    /// Versions without a version (devices never heard from) are not listed.
    pub fleet: &'a [FleetVersion],
    /// Devices whose version is not known yet.
    pub unknown_devices: i64,
    pub fixes: &'a [Fix],
    pub now: DateTime<Utc>,
}

fn devices(n: i64) -> String {
    if n == 1 {
        "1 device".into()
    } else {
        format!("{n} devices")
    }
}

/// A product id unique within the document: the product and the version's text.
fn product_id(product: &str, version: &str) -> String {
    let clean: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{product}-{clean}")
}

/// A VEX describes one customer's fleet: TLP:AMBER at least, RED for a RED advisory.
fn vex_tlp(advisory: crate::domain::Tlp) -> &'static str {
    match advisory {
        crate::domain::Tlp::Red => "RED",
        _ => "AMBER",
    }
}

/// The VEX document of `input`.
pub fn document(input: &VexInput<'_>) -> Value {
    let advisory = input.advisory;
    let mut tree = Vec::new();
    let mut affected_ids = Vec::new();
    let mut fixed_ids = Vec::new();
    let mut not_affected_ids = Vec::new();
    let mut investigating_ids = Vec::new();
    let mut remediations = Vec::new();
    let mut impacts = Vec::new();
    let mut unreadable = 0;
    let mut listed_devices = 0;
    for affected in &advisory.affected {
        let product = &affected.product;
        let mut branches = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for running in input.fleet.iter().filter(|v| v.product == product.slug) {
            let Some(version) = running.parsed.as_ref() else {
                unreadable += running.devices;
                continue;
            };
            let id = product_id(&product.slug, &running.version);
            if !seen.insert(id.clone()) {
                continue;
            }
            listed_devices += running.devices;
            branches.push(json!({
                "category": "product_version",
                "name": running.version,
                "product": {"name": format!("{} {}", product.name, running.version), "product_id": id},
            }));
            let why = explain(affected, Some(version), None);
            let statement = format!(
                "{} of {} on {} {}: {why}.",
                devices(running.devices),
                input.customer_name,
                product.name,
                running.version
            );
            match classify(affected, Some(version)) {
                ExposureState::Affected => {
                    affected_ids.push(id.clone());
                    remediations.push(remediation(input, affected, version, &id, &statement));
                }
                ExposureState::Fixed => fixed_ids.push(id),
                ExposureState::Unaffected => {
                    impacts.push(json!({"category": "impact", "details": statement, "product_ids": [id.clone()]}));
                    not_affected_ids.push(id);
                }
                ExposureState::Unknown => investigating_ids.push(id),
            }
        }
        if !branches.is_empty() {
            tree.push(json!({"category": "product_name", "name": product.name, "branches": branches}));
        }
    }
    if !advisory.workarounds.is_empty() && !affected_ids.is_empty() {
        remediations
            .push(json!({"category": "workaround", "details": advisory.workarounds, "product_ids": affected_ids}));
    }

    let mut status = serde_json::Map::new();
    for (key, ids) in [
        ("known_affected", &affected_ids),
        ("fixed", &fixed_ids),
        ("known_not_affected", &not_affected_ids),
        ("under_investigation", &investigating_ids),
    ] {
        if !ids.is_empty() {
            status.insert(key.into(), json!(ids));
        }
    }
    let mut flags = Vec::new();
    if !not_affected_ids.is_empty() {
        flags.push(json!({"label": "vulnerable_code_not_present", "product_ids": not_affected_ids}));
    }
    let scores = super::scores(advisory, &affected_ids);

    let mut notes = vec![json!({"category": "description", "title": "Description", "text": advisory.summary})];
    if let Some(v4) = &advisory.cvss_v4 {
        notes.push(json!({"category": "other", "title": "CVSS v4.0", "text": format!("{} (base score {}, {})", v4.vector, v4.score, v4.severity)}));
    }
    let vulnerabilities: Vec<Value> = vulnerability_ids(advisory, input.public_id)
        .into_iter()
        .map(|ids| {
            let mut v = json!({"notes": notes, "product_status": status});
            if let Value::Object(map) = &mut v {
                map.extend(ids);
                if !remediations.is_empty() {
                    map.insert("remediations".into(), json!(remediations));
                }
                if !flags.is_empty() {
                    map.insert("flags".into(), json!(flags));
                }
                if !impacts.is_empty() {
                    map.insert("threats".into(), json!(impacts));
                }
                if !scores.is_empty() {
                    map.insert("scores".into(), json!(scores));
                }
            }
            v
        })
        .collect();

    let mut scope = format!(
        "This VEX states, for each version that devices of {} run, whether advisory {} affects it. \
         It was made at {} from the versions the devices last reported or were last seen running ({} listed).",
        input.customer_name,
        input.public_id,
        rfc3339(input.now),
        devices(listed_devices)
    );
    if unreadable > 0 {
        scope.push_str(&format!(
            " {} report a version that cannot be read in the product's version scheme; they are not listed.",
            devices(unreadable)
        ));
    }
    if input.unknown_devices > 0 {
        scope.push_str(&format!(
            " {} have not reported a version yet; they are not listed.",
            devices(input.unknown_devices)
        ));
    }
    let mut doc_notes = vec![
        json!({"category": "summary", "title": "Summary", "text": advisory.summary}),
        json!({"category": "general", "title": "Scope", "text": scope}),
    ];
    if let Some(deadline) = advisory.fix_deadline {
        doc_notes.push(json!({"category": "general", "title": "Fix deadline", "text": format!("The vendor asks that affected devices be fixed by {}.", rfc3339(deadline))}));
    }
    let history: Vec<Value> = input
        .revisions
        .iter()
        .map(|r| json!({"date": r.date, "number": r.revision.to_string(), "summary": r.summary}))
        .collect();
    let version = input.revisions.last().map_or(1, |r| r.revision);
    json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "distribution": {
                "text": format!("For {} only: it describes that customer's devices.", input.customer_name),
                "tlp": {"label": vex_tlp(advisory.tlp), "url": "https://www.first.org/tlp/"},
            },
            "lang": "en",
            "notes": doc_notes,
            "publisher": {"category": "vendor", "name": input.publisher.name, "namespace": input.publisher.namespace},
            "references": [
                {"category": "self", "summary": "This VEX", "url": input.self_url},
                {"category": "external", "summary": "The advisory in CSAF format", "url": input.advisory_url},
            ],
            "title": format!("{} (VEX for {})", advisory.title, input.customer_name),
            "tracking": {
                "current_release_date": rfc3339(input.now),
                "generator": {"date": rfc3339(input.now), "engine": {"name": "patchwarden", "version": env!("CARGO_PKG_VERSION")}},
                "id": format!("{}-VEX-{}", input.public_id, input.customer_slug.to_uppercase()),
                "initial_release_date": rfc3339(input.first_published),
                "revision_history": history,
                "status": "interim",
                "version": version.to_string(),
            },
        },
        "product_tree": {"branches": [{"category": "vendor", "name": input.publisher.name, "branches": tree}]},
        "vulnerabilities": vulnerabilities,
    })
}

/// What an affected version's devices should do: install a published fix of its
/// product, or update to the fixed release the advisory names, or — with neither —
/// that none is available yet.
fn remediation(
    input: &VexInput<'_>,
    affected: &crate::domain::advisory::Affected,
    version: &Version,
    id: &str,
    statement: &str,
) -> Value {
    let deadline = input
        .advisory
        .fix_deadline
        .map(|d| format!(" The fix deadline is {}.", rfc3339(d)))
        .unwrap_or_default();
    let product = &affected.product;
    let finding = input.advisory.finding(&product.slug, version);
    let target = finding.as_ref().and_then(|f| f.fixed_on_train.clone());
    let patch = input.fixes.iter().filter(|f| f.product == product.slug).find(|f| {
        target.as_ref().is_none_or(|t| {
            product
                .scheme
                .parse(&f.version)
                .is_ok_and(|v| v.same_train(t) && v >= *t)
        })
    });
    match (patch, target) {
        (Some(patch), _) => json!({
            "category": "vendor_fix",
            "details": format!("{statement} Install patch {} ({} {}).{deadline}", patch.patch_id, product.name, patch.version),
            "product_ids": [id],
            "url": patch.url,
        }),
        (None, Some(target)) => json!({
            "category": "vendor_fix",
            "details": format!("{statement} Update {} to {target} or later.{deadline}", product.name),
            "product_ids": [id],
        }),
        (None, None) => json!({
            "category": "none_available",
            "details": format!("{statement} No fixed release is named for this version yet."),
            "product_ids": [id],
        }),
    }
}
