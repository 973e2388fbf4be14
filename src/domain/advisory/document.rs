//! The document of a published revision: the advisory with its metadata (id,
//! revision, history, signing key) as one JSON value, and the canonical bytes of
//! that value, which are what is signed.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

use super::{Advisory, RevisionStatus};
use crate::domain::cvss::CvssScore;

/// One entry of a revision history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionEntry {
    pub revision: i32,
    pub date: String,
    pub summary: String,
}

/// What a revision is besides its body.
#[derive(Clone, Debug)]
pub struct RevisionMeta {
    pub id: String,
    pub revision: i32,
    pub status: RevisionStatus,
    pub first_published: DateTime<Utc>,
    pub published: DateTime<Utc>,
    pub change_summary: String,
    /// Earlier revisions, oldest first; this one is appended.
    pub history: Vec<RevisionEntry>,
    pub withdrawn_reason: Option<String>,
    pub key_id: String,
}

/// An RFC 3339 UTC time with second precision, as documents carry it.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn score_json(score: &CvssScore) -> Value {
    serde_json::json!({"vector": score.vector, "score": score.score, "severity": score.severity})
}

/// The revision document: the advisory and its metadata as one JSON value.
pub fn revision_document(advisory: &Advisory, meta: &RevisionMeta) -> Value {
    let mut history = meta.history.clone();
    history.push(RevisionEntry {
        revision: meta.revision,
        date: rfc3339(meta.published),
        summary: meta.change_summary.clone(),
    });
    let affected: Vec<Value> = advisory
        .affected
        .iter()
        .map(|a| {
            serde_json::json!({
                "product": a.product.slug,
                "product_name": a.product.name,
                "version_scheme": a.product.scheme,
                "ranges": a.ranges.iter().map(|r| {
                    let mut range = serde_json::to_value(r.to_input()).unwrap_or(Value::Null);
                    if let Value::Object(map) = &mut range {
                        map.insert("train".into(), Value::String(r.introduced().train()));
                    }
                    range
                }).collect::<Vec<_>>(),
                "versions": a.versions.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "fixed_versions": a.fixed_versions().iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut doc = serde_json::json!({
        "schema_version": "1",
        "id": meta.id,
        "revision": meta.revision,
        "status": meta.status,
        "title": advisory.title,
        "summary": advisory.summary,
        "severity": advisory.severity(),
        "cvss_v3": advisory.cvss_v3.as_ref().map(score_json),
        "cvss_v4": advisory.cvss_v4.as_ref().map(score_json),
        "cves": advisory.cves,
        "cwes": advisory.cwes,
        "emergency": advisory.emergency,
        "known_exploited": advisory.known_exploited,
        "fix_deadline": advisory.fix_deadline.map(rfc3339),
        "affected": affected,
        "workarounds": advisory.workarounds,
        "references": advisory.references,
        "acknowledgements": advisory.acknowledgements,
        "published": rfc3339(meta.first_published),
        "updated": rfc3339(meta.published),
        "change_summary": meta.change_summary,
        "revisions": history,
        "signing_key_id": meta.key_id,
    });
    if let (Some(reason), Value::Object(map)) = (&meta.withdrawn_reason, &mut doc) {
        map.insert("withdrawn_reason".into(), Value::String(reason.clone()));
    }
    // A restricted advisory's signature covers whom it is for.
    if let (true, Value::Object(map)) = (advisory.tlp.restricted(), &mut doc) {
        map.insert("tlp".into(), Value::String(advisory.tlp.as_str().to_owned()));
        map.insert("customers".into(), serde_json::json!(advisory.readers));
    }
    doc
}

/// Compact JSON with every object's keys in byte order: the same value always
/// gives the same bytes, whatever order the fields were built in.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> = map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}
