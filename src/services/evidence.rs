//! The evidence bundle of one advisory for one customer: what that customer hands
//! an auditor to show what was published, that it was published to everyone alike,
//! and which of its devices run a fix — checkable offline with the vendor's public
//! key alone (`patchwarden audit --bundle`).
//!
//! Parts (see [`crate::domain::bundle`] for the container):
//! - `manifest.json`: the advisory, the customer, when the bundle was made;
//! - `keys.json`: every signing key with the rotation statement that introduced it;
//! - `advisory/r<n>.json` and `.minisig`: each revision exactly as signed;
//! - `patches/<id>.json` and `.minisig`: each patch of the customer that fixes it;
//! - `patches/<id>.tlog-proof`: each patch's C2SP tlog-proof, which an
//!   air-gapped device installs it with;
//! - `log/head.json`: a signed tree head, and `log/checkpoint` the same head as a
//!   C2SP signed note with the witnesses' cosignatures, `log/note_verifier_key` the
//!   key that note is signed with; `log/entries.json`: the log entries of
//!   the revisions, patches and keys and of the customer's devices, each with its
//!   inclusion proof in that head; `log/openings.json`: the openings of the
//!   customer's sealed entries;
//! - `devices.json`: per device of the customer, its version and exposure and the
//!   log entries that show it;
//! - `bundle.minisig`: the vendor key's signature over everything before it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::db::models::log::{self as rows, LogEntryRecord};
use crate::db::models::{
    now, utc, Customer, DeviceFilter, DeviceRecord, PatchRecord, RevisionRecord, SigningKeyRecord,
};
use crate::domain::advisory::Completeness;
use crate::domain::bundle::{self, Part, SIGNATURE_PART};
use crate::domain::fleet::classify;
use crate::domain::log::{advisory_subject, patch_subject, LogKind};
use crate::domain::proof::PROOF_EXTENSION;
use crate::domain::{AdvisoryStatus, Caller, ExposureState, PatchState};
use crate::ids::{CustomerId, PatchId};
use crate::services::advisories::{current_input, find, KnownProducts};
use crate::services::refusals::Refusal;
use crate::services::{log, ServiceError, Services};
use crate::signing::KeyResponse;

/// The part holding the bundle's head as a cosigned C2SP note.
pub const CHECKPOINT_PART: &str = "log/checkpoint";

/// The part holding the log's note verifier key (`<origin>+<hex id>+<base64>`).
pub const NOTE_KEY_PART: &str = "log/note_verifier_key";

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub advisory: String,
    pub customer_id: String,
    pub customer: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revisions: Vec<i32>,
    pub patches: Vec<String>,
}

/// One entry of `log/entries.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenEntry {
    pub index: u64,
    pub leaf: String,
    pub proof: Vec<String>,
}

/// One opening of `log/openings.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleOpening {
    pub index: u64,
    pub salt: String,
    pub entry: String,
}

/// One patch of `patches/<id>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchFacts {
    pub id: String,
    pub product: String,
    pub version: String,
    pub platform: Option<String>,
    pub sha256: String,
    pub size: i64,
    pub state: String,
}

/// One device of `devices.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFacts {
    pub id: String,
    pub name: String,
    pub product: String,
    pub version: Option<String>,
    /// `affected`, `fixed`, `unaffected` or `unknown` for this advisory.
    pub exposure: ExposureState,
    /// The log entries that show it: the latest observation of what it runs (its
    /// enrolment, or a version seen since) and its install reports of the patches
    /// that fix the advisory.
    pub entries: Vec<u64>,
}

/// The trusted comment of a bundle's closing signature.
pub fn bundle_comment(advisory: &str, customer: &str, tree_size: u64) -> String {
    format!("patchwarden-evidence advisory={advisory} customer={customer} tree_size={tree_size}")
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ServiceError> {
    serde_json::to_vec_pretty(value).map_err(|e| ServiceError::internal("writing an evidence bundle", e))
}

/// The file name a bundle is offered under.
pub fn file_name(advisory: &str, customer: &str) -> String {
    format!("{advisory}-{customer}-evidence.pwb")
}

/// The bundle of advisory `key` for the caller's customer.
pub async fn for_caller(services: &Services, caller: &Caller, key: String) -> Result<(String, Vec<u8>), ServiceError> {
    let customer = caller
        .scope
        .customer()
        .ok_or_else(|| ServiceError::Forbidden("evidence bundles are made for a customer's admins".into()))?;
    services
        .evidence_budgets
        .spend(customer)
        .map_err(|wait| services.refusals.rate_limited(Refusal::EvidenceRate, wait))?;
    bundle(services, customer, key).await
}

/// Builds the bundle of advisory `key` for `customer`, over a head that covers the
/// log as it stands (the newest, or one signed now when the log grew past it).
pub async fn bundle(
    services: &Services,
    customer: &CustomerId,
    key: String,
) -> Result<(String, Vec<u8>), ServiceError> {
    // A head that covers everything up to now, devices' latest observations included.
    crate::services::fleet::flush::flush(services).await?;
    let head = log::covering_head(services).await?;
    let tree_size = head.tree_size;
    let customer = customer.clone();
    let note_key = services.note_signer.verifier().to_string();
    let (public_id, slug, parts, patches) = services
        .db
        .run(move |conn| {
            let record = find(conn, &key)?;
            if !record.readable(conn, &crate::domain::Reader::Customer(customer.clone()))? {
                return Err(ServiceError::NotFound("advisory"));
            }
            let public_id = match (&record.public_id, record.status) {
                (Some(id), AdvisoryStatus::Published | AdvisoryStatus::Withdrawn) => id.clone(),
                _ => return Err(ServiceError::NotFound("advisory")),
            };
            let customer_row = Customer::find(conn, &customer)?.ok_or(ServiceError::NotFound("customer"))?;
            let size = head.tree_size;
            let mut parts = Vec::new();
            let mut subjects = Vec::new();

            let revisions = RevisionRecord::list(conn, &record.id)?;
            for revision in &revisions {
                parts.push(Part {
                    name: format!("advisory/r{}.json", revision.revision),
                    bytes: revision.document.clone().into_bytes(),
                });
                parts.push(Part {
                    name: format!("advisory/r{}.json.minisig", revision.revision),
                    bytes: revision.signature.clone().into_bytes(),
                });
                subjects.push(advisory_subject(&public_id, revision.revision));
            }
            let patches: Vec<_> = PatchRecord::list(conn, Some(&customer))?
                .into_iter()
                .filter(|v| v.patch.state != PatchState::Draft && v.fixes.contains(&public_id))
                .collect();
            for view in &patches {
                let (Some(sha256), Some(size), Some(signature)) =
                    (&view.patch.sha256, view.patch.size, &view.patch.signature)
                else {
                    continue;
                };
                let facts = PatchFacts {
                    id: view.patch.id.to_string(),
                    product: view.product.slug.clone(),
                    version: view.patch.version.clone(),
                    platform: view.patch.platform.clone(),
                    sha256: sha256.clone(),
                    size,
                    state: view.patch.state.as_str().to_owned(),
                };
                parts.push(Part {
                    name: format!("patches/{}.json", view.patch.id),
                    bytes: json(&facts)?,
                });
                parts.push(Part {
                    name: format!("patches/{}.minisig", view.patch.id),
                    bytes: signature.clone().into_bytes(),
                });
                subjects.push(patch_subject(view.patch.id.as_str()));
            }
            let keys: Vec<KeyResponse> = SigningKeyRecord::list(conn)?
                .into_iter()
                .map(|k| {
                    subjects.push(format!("key/{}", k.key_id));
                    KeyResponse::from(k)
                })
                .collect();
            let mut entries: BTreeMap<u64, LogEntryRecord> = rows::about(conn, &subjects, None)?
                .into_iter()
                .filter(|e| (e.idx as u64) < size)
                .map(|e| (e.idx as u64, e))
                .collect();

            // The customer's devices of the products the advisory names.
            let catalogue = KnownProducts::load(conn)?;
            let advisory = catalogue.validate(&current_input(&record)?, Completeness::Draft)?;
            let fixing: BTreeSet<String> = patches.iter().map(|v| v.patch.id.to_string()).collect();
            // The customer's sealed entries under this head, by device, oldest first.
            let mut sealed: HashMap<String, Vec<LogEntryRecord>> = HashMap::new();
            for entry in rows::of_customer(
                conn,
                customer.as_str(),
                &[
                    LogKind::DeviceEnrolled.as_str(),
                    LogKind::FixObserved.as_str(),
                    LogKind::InstallReported.as_str(),
                ],
            )? {
                if (entry.idx as u64) < size {
                    sealed.entry(entry.subject.clone()).or_default().push(entry);
                }
            }
            let mut devices = Vec::new();
            for affected in &advisory.affected {
                let Some(product) = catalogue.get(&affected.product.slug) else {
                    continue;
                };
                let filter = DeviceFilter {
                    customer: Some(customer.clone()),
                    products: Some(vec![product.id.clone()]),
                    ..DeviceFilter::default()
                };
                for (device, _, _) in DeviceRecord::all(conn, &filter)? {
                    let subject = format!("device/{}", device.id);
                    let mut shown = Vec::new();
                    let mut latest_observation = None;
                    let of_device = sealed.get(&subject).map(Vec::as_slice).unwrap_or_default();
                    for entry in of_device {
                        let opened = opened_entry(entry);
                        let relevant = match entry.kind.parse::<LogKind>() {
                            Ok(LogKind::DeviceEnrolled | LogKind::FixObserved) => {
                                latest_observation = Some(entry.idx as u64);
                                false
                            }
                            Ok(LogKind::InstallReported) => opened
                                .as_ref()
                                .and_then(|o| o.get("patch").and_then(Value::as_str).map(|p| fixing.contains(p)))
                                .unwrap_or(false),
                            _ => false,
                        };
                        if relevant {
                            shown.push(entry.idx as u64);
                            entries.insert(entry.idx as u64, entry.clone());
                        }
                    }
                    if let Some(index) = latest_observation {
                        shown.push(index);
                        if let Some(entry) = of_device.iter().find(|e| e.idx as u64 == index) {
                            entries.insert(index, entry.clone());
                        }
                    }
                    shown.sort_unstable();
                    let version = device.version.as_deref().and_then(|v| product.scheme().parse(v).ok());
                    devices.push(DeviceFacts {
                        id: device.id.to_string(),
                        name: device.name.clone(),
                        product: product.slug.clone(),
                        version: device.version.clone(),
                        exposure: classify(affected, version.as_ref()),
                        entries: shown,
                    });
                }
            }

            let mut proven = Vec::new();
            let mut openings = Vec::new();
            for (index, entry) in &entries {
                let proof = log::inclusion_in(conn, *index, size)?;
                proven.push(ProvenEntry {
                    index: *index,
                    leaf: entry.leaf.clone(),
                    proof: proof.proof,
                });
                if entry.opening.is_some() {
                    let stored = log::Opening::of(entry)
                        .ok_or_else(|| ServiceError::internal("a stored log opening", "it is not readable"))?;
                    openings.push(BundleOpening {
                        index: *index,
                        salt: stored.salt,
                        entry: stored.entry,
                    });
                }
            }
            let manifest = Manifest {
                format: "patchwarden-evidence-bundle v1".into(),
                advisory: public_id.clone(),
                customer_id: customer.to_string(),
                customer: customer_row.slug.clone(),
                created_at: utc(now()),
                revisions: revisions.iter().map(|r| r.revision).collect(),
                patches: patches.iter().map(|v| v.patch.id.to_string()).collect(),
            };
            let mut all = vec![
                Part {
                    name: "manifest.json".into(),
                    bytes: json(&manifest)?,
                },
                Part {
                    name: "keys.json".into(),
                    bytes: json(&keys)?,
                },
            ];
            all.extend(parts);
            all.push(Part {
                name: "log/head.json".into(),
                bytes: json(&head)?,
            });
            // The same head as a signed note with the witnesses' cosignatures.
            let record = rows::head(conn, head.sequence as i64)?
                .ok_or_else(|| ServiceError::internal("reading the bundle's head", "it is gone"))?;
            if let Some(note) = log::cosigned_note(&record, &rows::cosignatures(conn, record.sequence)?)? {
                all.push(Part {
                    name: CHECKPOINT_PART.into(),
                    bytes: note.to_text().into_bytes(),
                });
                all.push(Part {
                    name: NOTE_KEY_PART.into(),
                    bytes: format!("{note_key}\n").into_bytes(),
                });
            }
            all.push(Part {
                name: "log/entries.json".into(),
                bytes: json(&proven)?,
            });
            all.push(Part {
                name: "log/openings.json".into(),
                bytes: json(&openings)?,
            });
            all.push(Part {
                name: "devices.json".into(),
                bytes: json(&devices)?,
            });
            let ids: Vec<PatchId> = patches.iter().map(|v| v.patch.id.clone()).collect();
            Ok::<_, ServiceError>((public_id, customer_row.slug, all, ids))
        })
        .await?;
    let mut parts = parts;
    // Each patch's offline proof, as `GET /api/v1/patches/{id}/proof` gives it.
    for id in &patches {
        parts.push(Part {
            name: format!("patches/{id}.{PROOF_EXTENSION}"),
            bytes: log::patch_proof(services, id).await?.into_bytes(),
        });
    }
    let mut bytes = bundle::write(&parts);
    let comment = bundle_comment(&public_id, &slug, tree_size);
    let signature = services.signer.sign(&bytes, &comment).map_err(ServiceError::Internal)?;
    bundle::append(
        &mut bytes,
        &Part {
            name: SIGNATURE_PART.into(),
            bytes: signature.into_bytes(),
        },
    );
    tracing::info!(advisory.id = %public_id, customer = %slug, bytes = bytes.len(), "made an evidence bundle");
    Ok((file_name(&public_id, &slug), bytes))
}

/// The opened details of a sealed entry.
fn opened_entry(entry: &LogEntryRecord) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_str(&log::Opening::of(entry)?.entry).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
