//! The operator's audit page: the log as a timeline, newest first, filtered, with
//! sealed entries opened, users and devices named (as actors and as subjects), and
//! each entry's inclusion proof in the newest signed head.

use std::collections::HashMap;

use super::heads::signed_head;
use super::Opening;
use crate::db::models::log::{self as rows, EntryFilter};
use crate::db::models::utc;
use crate::domain::log::LogKind;
use crate::domain::log::SignedHead;
use crate::services::{ServiceError, Services};

/// One entry of the operator's audit page.
#[derive(Clone, Debug, serde::Serialize)]
pub struct AuditEntry {
    pub index: u64,
    pub kind: String,
    pub subject: String,
    /// Who acted: a user's email, a device, a token, the server.
    pub actor: String,
    /// The actor as stored (`user:<id>`, `device:<id>` …), for filtering.
    pub actor_key: String,
    /// The slug of the customer a sealed entry concerns.
    pub customer: Option<String>,
    /// The subject's name and id when it is a device (`fw-1`).
    pub subject_name: Option<String>,
    pub subject_device: Option<String>,
    /// Whether the newest signed head covers the entry, so its inclusion proof exists.
    pub covered: bool,
    pub at: String,
    /// What the entry says: its text, or for a sealed one the opened details.
    pub details: String,
    pub sealed: bool,
}

/// The operator's audit page: the newest head and one page of the timeline.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timeline {
    pub head: Option<SignedHead>,
    pub entries: Vec<AuditEntry>,
    /// The `before` of the next (older) page, when there is one.
    pub older: Option<u64>,
    pub kinds: Vec<&'static str>,
    pub customers: Vec<String>,
}

/// What the audit page lists.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelineQuery {
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub actor: Option<String>,
    /// A customer's slug.
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub before: Option<u64>,
}

/// Entries per page of the audit page.
const TIMELINE_PAGE: i64 = 100;

/// One page of the log as a timeline, newest first, filtered; for vendor staff.
pub async fn timeline(services: &Services, query: TimelineQuery) -> Result<Timeline, ServiceError> {
    use crate::db::models::{Customer, DeviceRecord, EnrollmentToken, User};
    use crate::ids::{DeviceId, EnrollmentTokenId};
    super::integrate_pending(services).await?;
    services
        .db
        .run(move |conn| {
            let non_empty =
                |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
            let kind = non_empty(&query.kind);
            if let Some(kind) = &kind {
                kind.parse::<LogKind>().map_err(|e| ServiceError::invalid("kind", e))?;
            }
            let customers = Customer::list(conn)?;
            let customer = match non_empty(&query.customer) {
                Some(slug) => Some(
                    customers
                        .iter()
                        .find(|c| c.slug == slug)
                        .map(|c| c.id.to_string())
                        .ok_or_else(|| ServiceError::invalid("customer", format!("there is no customer `{slug}`")))?,
                ),
                None => None,
            };
            let filter = EntryFilter {
                kind,
                actor: non_empty(&query.actor),
                customer,
                before: query.before.map(|b| b as i64),
            };
            let rows = rows::recent(conn, &filter, TIMELINE_PAGE + 1)?;
            let mut names: HashMap<String, String> = User::list_with_customer(conn, None)?
                .into_iter()
                .map(|(u, _)| (format!("user:{}", u.id), u.email))
                .collect();
            let device_ids: Vec<DeviceId> = rows
                .iter()
                .flat_map(|e| [e.actor.strip_prefix("device:"), e.subject.strip_prefix("device/")])
                .flatten()
                .filter_map(|id| id.parse().ok())
                .collect();
            let devices: HashMap<String, String> =
                DeviceRecord::find_many(conn, &device_ids.iter().collect::<Vec<_>>())?
                    .into_iter()
                    .map(|d| (d.id.to_string(), d.name))
                    .collect();
            names.extend(
                devices
                    .iter()
                    .map(|(id, name)| (format!("device:{id}"), format!("device {name}"))),
            );
            // Enrolment tokens are few on a page; each is named by its label.
            let mut tokens: Vec<&str> = rows
                .iter()
                .filter_map(|e| e.actor.strip_prefix("enrollment-token:"))
                .collect();
            tokens.sort_unstable();
            tokens.dedup();
            for id in tokens {
                let Ok(parsed) = id.parse::<EnrollmentTokenId>() else {
                    continue;
                };
                if let Some(token) = EnrollmentToken::find(conn, &parsed)? {
                    names.insert(
                        format!("enrollment-token:{id}"),
                        format!("enrolment token “{}”", token.label),
                    );
                }
            }
            let slugs: HashMap<String, String> = customers.iter().map(|c| (c.id.to_string(), c.slug.clone())).collect();
            let head = rows::latest_head(conn)?.map(|h| signed_head(&h)).transpose()?;
            let covered = head.as_ref().map_or(0, |h| h.tree_size);
            let older = (rows.len() as i64 > TIMELINE_PAGE).then(|| rows[TIMELINE_PAGE as usize - 1].idx as u64);
            let entries = rows
                .into_iter()
                .take(TIMELINE_PAGE as usize)
                .map(|e| {
                    let details = Opening::of(&e).map_or_else(|| e.leaf.clone(), |o| o.entry);
                    let index = e.idx as u64;
                    let subject_device = e.subject.strip_prefix("device/").map(str::to_owned);
                    AuditEntry {
                        index,
                        sealed: e.opening.is_some(),
                        actor: names.get(&e.actor).cloned().unwrap_or_else(|| e.actor.clone()),
                        actor_key: e.actor,
                        customer: e.customer_id.map(|c| slugs.get(&c).cloned().unwrap_or(c)),
                        at: utc(e.created_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        subject_name: subject_device.as_ref().and_then(|id| devices.get(id).cloned()),
                        subject_device,
                        covered: index < covered,
                        kind: e.kind,
                        subject: e.subject,
                        details,
                    }
                })
                .collect();
            Ok(Timeline {
                head,
                entries,
                older,
                kinds: LogKind::ALL.iter().map(|k| k.as_str()).collect(),
                customers: customers.into_iter().map(|c| c.slug).collect(),
            })
        })
        .await
}
