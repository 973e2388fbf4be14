//! Gathering witnesses' cosignatures of the log's checkpoints (C2SP `tlog-witness`,
//! as a client). The witnesses and the quorum are the `witness_policy` file; after a
//! head is signed, each witness with a URL is sent the checkpoint with a consistency
//! proof from the size it last cosigned (learnt from its 409 when unknown), on its
//! own and with a timeout, so one witness down or slow delays no other and nothing
//! else: the head is served with the cosignatures it has. A witness that failed is
//! asked again after a wait that doubles, up to a minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::db::models::log::{self as rows, CosignatureRecord, LogHeadRecord};
use crate::db::models::utc;
use crate::domain::log::parse_proof;
use crate::domain::note::{Note, NoteSignature};
use crate::domain::policy::{Policy, PolicyWitness};
use crate::services::error::is_unique_violation;
use crate::services::log::{consistency_in, cosigned_note};
use crate::services::{ServiceError, Services};
use crate::witness::AddCheckpoint;

/// The longest wait before a failed witness is asked again.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The largest answer read from a witness.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What this instance knows of one witness.
#[derive(Clone, Debug, Default)]
struct Known {
    /// The size it cosigned last, as far as known (its 409 says when not).
    size: Option<u64>,
    cosigned_at: Option<DateTime<Utc>>,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// Each witness's state on this instance.
#[derive(Default)]
pub struct WitnessTracker {
    known: Mutex<HashMap<String, Known>>,
}

/// One witness as the dashboard and `/metrics` show it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WitnessStatus {
    pub name: String,
    pub url: Option<String>,
    /// The largest checkpoint it cosigned, and when.
    pub cosigned_size: Option<u64>,
    pub cosigned_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// The vendor's log page: the timeline, and the witnesses when there is a policy.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LogPage {
    pub timeline: crate::services::log::Timeline,
    pub witnesses: Option<WitnessReport>,
}

/// The log's timeline for `query`, with the witnesses' report.
pub async fn log_page(
    services: &Services,
    query: crate::services::log::TimelineQuery,
) -> Result<LogPage, ServiceError> {
    Ok(LogPage {
        timeline: crate::services::log::timeline(services, query).await?,
        witnesses: report(services).await?,
    })
}

/// Whether the newest head meets the policy's quorum, and the witnesses' states.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WitnessReport {
    pub quorum: String,
    pub sequence: u64,
    pub tree_size: u64,
    /// The newest head has the cosignatures the quorum needs.
    pub met: bool,
    pub witnesses: Vec<WitnessStatus>,
}

impl WitnessTracker {
    fn get(&self, name: &str) -> Known {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    fn update(&self, name: &str, change: impl FnOnce(&mut Known)) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        change(known.entry(name.to_owned()).or_default());
    }

    /// Lets every witness be asked at the next run, whatever its wait after a
    /// failure (when an operator knows a witness is back).
    pub fn retry_now(&self) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        for k in known.values_mut() {
            k.retry_at = None;
        }
    }

    /// Each witness of `policy` as this instance knows it, from memory.
    pub fn statuses(&self, policy: &Policy) -> Vec<WitnessStatus> {
        policy
            .witnesses
            .iter()
            .map(|w| {
                let known = self.get(&w.name);
                WitnessStatus {
                    name: w.name.clone(),
                    url: w.url.clone(),
                    cosigned_size: known.size.filter(|_| known.cosigned_at.is_some()),
                    cosigned_at: known.cosigned_at,
                    last_error: known.last_error,
                }
            })
            .collect()
    }

    fn failed(&self, name: &str, why: String) {
        tracing::warn!(witness = name, error = %why, "a witness did not cosign");
        self.update(name, |k| {
            k.failures = k.failures.saturating_add(1);
            let wait = Duration::from_secs(1 << k.failures.min(6)).min(MAX_BACKOFF);
            k.retry_at = Some(Instant::now() + wait);
            k.last_error = Some(why);
        });
    }
}

/// Why one submission did not give a cosignature.
enum Outcome {
    Cosigned(CosignatureRecord),
    /// The witness holds another size: ask again from there.
    Holds(u64),
    Failed(String),
}

async fn submit(
    services: &Services,
    witness: &PolicyWitness,
    url: &str,
    head: &LogHeadRecord,
    note: &Note,
    old: u64,
) -> Outcome {
    let size = head.tree_size as u64;
    let proof = if old == 0 || old >= size {
        Vec::new()
    } else {
        match services.db.run(move |conn| consistency_in(conn, old, size)).await {
            Ok(proof) => match parse_proof(&proof.proof) {
                Ok(hashes) => hashes,
                Err(e) => return Outcome::Failed(format!("the log's proof does not read: {e}")),
            },
            Err(e) => return Outcome::Failed(format!("no consistency proof from {old}: {e}")),
        }
    };
    let body = AddCheckpoint::body(old, &proof, note);
    let target = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    let Ok(parsed) = services.outbound.check_url(&target) else {
        return Outcome::Failed(format!("{target} is not a URL this server may reach"));
    };
    let sent = services
        .outbound
        .client
        .post(parsed)
        .timeout(services.config.witness_timeout)
        .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(crate::services::outbound::Failure::of(&e).detail),
    };
    let status = response.status().as_u16();
    let text = match crate::services::outbound::read_capped(response, MAX_ANSWER_BYTES).await {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        Ok(None) => return Outcome::Failed(format!("the answer is larger than {MAX_ANSWER_BYTES} bytes")),
        Err(failure) => return Outcome::Failed(failure.detail),
    };
    match status {
        200 => {
            for line in text.lines() {
                let Ok(signature) = NoteSignature::parse(line) else {
                    continue;
                };
                if let Some(Some(timestamp)) = signature.verified_by(&witness.key, &note.text) {
                    let at = DateTime::from_timestamp(timestamp as i64, 0).unwrap_or_else(Utc::now);
                    return Outcome::Cosigned(CosignatureRecord {
                        sequence: head.sequence,
                        witness: witness.name.clone(),
                        line: signature.line(),
                        cosigned_at: at.naive_utc(),
                    });
                }
            }
            Outcome::Failed("the answer holds no cosignature of the witness's key for this checkpoint".into())
        }
        409 => match text.trim().parse::<u64>() {
            Ok(held) => Outcome::Holds(held),
            Err(_) => Outcome::Failed("409 without the size the witness holds".into()),
        },
        // Only the status: a witness's text is its own, not echoed into the dashboard.
        other => Outcome::Failed(format!("the witness answered {other}")),
    }
}

async fn ask(services: &Services, witness: &PolicyWitness, url: &str, head: &LogHeadRecord, note: &Note) -> bool {
    let tracker = &services.witness_tracker;
    let mut old = tracker.get(&witness.name).size.unwrap_or(0);
    // A 409 says which size the witness holds; one more try from there.
    for _ in 0..2 {
        match submit(services, witness, url, head, note, old).await {
            Outcome::Cosigned(record) => {
                let at = utc(record.cosigned_at);
                let stored = record.clone();
                // Another instance may have stored this witness's line a moment ago.
                let inserted = services
                    .db
                    .run(move |conn| match rows::insert_cosignature(conn, &stored) {
                        Err(e) if is_unique_violation(&e) => Ok(()),
                        other => other.map_err(ServiceError::from),
                    })
                    .await;
                if let Err(e) = inserted {
                    tracker.failed(&witness.name, format!("storing the cosignature: {e}"));
                    return false;
                }
                tracker.update(&witness.name, |k| {
                    *k = Known {
                        size: Some(head.tree_size as u64),
                        cosigned_at: Some(at),
                        ..Known::default()
                    };
                });
                return true;
            }
            Outcome::Holds(held) if held != old && held <= head.tree_size as u64 => {
                tracker.update(&witness.name, |k| k.size = Some(held));
                old = held;
            }
            Outcome::Holds(held) => {
                tracker.update(&witness.name, |k| k.size = Some(held));
                tracker.failed(
                    &witness.name,
                    format!(
                        "the witness holds size {held}, which this log's head of {} does not extend",
                        head.tree_size
                    ),
                );
                return false;
            }
            Outcome::Failed(why) => {
                tracker.failed(&witness.name, why);
                return false;
            }
        }
    }
    tracker.failed(&witness.name, "the witness's size kept changing".into());
    false
}

/// The newest head, its note as the log signed it, and who cosigned it.
async fn newest(services: &Services) -> Result<Option<(LogHeadRecord, Note, Vec<String>)>, ServiceError> {
    let Some((head, cosignatures)) = services.db.query(rows::latest_head_cosigned).await? else {
        return Ok(None);
    };
    let Some(note) = cosigned_note(&head, &[])? else {
        return Ok(None);
    };
    let by: Vec<String> = cosignatures.into_iter().map(|c| c.witness).collect();
    Ok(Some((head, note, by)))
}

/// Asks every witness with a URL that has not cosigned the newest head and is not
/// waiting out a failure; returns how many cosigned.
pub async fn gather(services: &Services) -> Result<usize, ServiceError> {
    let Some(policy) = services.config.witness_policy.as_ref() else {
        return Ok(0);
    };
    let Some((head, note, cosigned)) = newest(services).await? else {
        return Ok(0);
    };
    let now = Instant::now();
    let due: Vec<(&PolicyWitness, &str)> = policy
        .witnesses
        .iter()
        .filter(|w| !cosigned.contains(&w.name))
        .filter(|w| {
            services
                .witness_tracker
                .get(&w.name)
                .retry_at
                .is_none_or(|at| at <= now)
        })
        .filter_map(|w| w.url.as_deref().map(|url| (w, url)))
        .collect();
    let asked = join_all(due.iter().map(|(w, url)| ask(services, w, url, &head, &note))).await;
    Ok(asked.into_iter().filter(|ok| *ok).count())
}

/// The newest head's cosignatures against the policy, and each witness's state.
pub async fn report(services: &Services) -> Result<Option<WitnessReport>, ServiceError> {
    let Some(policy) = services.config.witness_policy.as_ref() else {
        return Ok(None);
    };
    let Some((head, stored)) = services.db.query(rows::latest_head_cosigned).await? else {
        return Ok(None);
    };
    let met = match cosigned_note(&head, &stored)? {
        Some(note) => policy.met_in(&note),
        None => !policy.requires_cosignatures(),
    };
    let witnesses = services.witness_tracker.statuses(policy);
    Ok(Some(WitnessReport {
        quorum: policy.quorum_name().to_owned(),
        sequence: head.sequence as u64,
        tree_size: head.tree_size as u64,
        met,
        witnesses,
    }))
}
