//! Anomaly flags. A change of what a device runs is inspected as it is written:
//! an image that no signed release explains, a version that went backwards without
//! a reported rollback, a version that changed without an install report. A sweep
//! flags devices that have been unreachable too long while an emergency advisory
//! affects them. Each flag is raised once, queued as an `anomaly` event for the
//! customer's webhooks in the same transaction, and stays open until a customer
//! admin acknowledges it with a comment.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Deserialize;

use crate::db::models::{now, utc, AnomalyRecord, DeviceRecord, ListedAnomaly, Product, ReleaseImage, Seen};
use crate::db::schema::{install_reports, patches};
use crate::db::DbConnection;
use crate::domain::fleet::HeadReport;
use crate::domain::state::Maybe;
use crate::domain::{text, AnomalyKind, Caller, EventType, ReportState, Scope};
use crate::ids::{AnomalyId, DeviceId, ProductId};
use crate::services::{webhooks, ServiceError, Services};

/// Anomalies a list shows at most.
pub const LIST_LIMIT: i64 = 500;

/// A change of what a device runs: what it ran before (when known) and what it was
/// seen running now.
pub struct Change<'a> {
    pub previous: Option<&'a str>,
    pub seen: &'a Seen,
}

fn installed_to(conn: &mut DbConnection, device: &DeviceId, version: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        install_reports::table
            .inner_join(patches::table)
            .filter(install_reports::device_id.eq(device))
            .filter(install_reports::state.eq(ReportState::Installed.as_str()))
            .filter(install_reports::version.eq(version).or(patches::version.eq(version))),
    ))
    .get_result(conn)
}

/// Raises `kind` for `device` unless raised before under `key`, and queues the
/// event; whether it is new.
fn raise(
    conn: &mut DbConnection,
    device: &DeviceRecord,
    kind: AnomalyKind,
    detail: String,
    seen: Option<&Seen>,
    key: String,
    at: NaiveDateTime,
) -> Result<bool, ServiceError> {
    let anomaly = AnomalyRecord {
        id: AnomalyId::generate(),
        customer_id: device.customer_id.clone(),
        device_id: device.id.clone(),
        kind,
        detail,
        version: seen.map(|s| s.version.clone()).or_else(|| device.version.clone()),
        image_sha256: seen.and_then(|s| s.image_sha256.clone()),
        dedupe_key: key,
        detected_at: at,
        acknowledged_by: None,
        acknowledged_at: None,
        ack_comment: None,
        occurrences: 1,
        last_detected_at: None,
    };
    if !AnomalyRecord::raise(conn, &anomaly)? {
        return Ok(false);
    }
    tracing::warn!(device.id = %device.id, anomaly.kind = %kind, "anomaly flagged");
    webhooks::emit(
        conn,
        &device.customer_id,
        EventType::Anomaly,
        serde_json::json!({
            "anomaly_id": anomaly.id,
            "kind": kind.as_str(),
            "description": kind.describe(),
            "detail": anomaly.detail,
            "device": {"id": device.id, "name": device.name},
            "version": anomaly.version,
            "image_sha256": anomaly.image_sha256,
            "detected_at": utc(at).to_rfc3339(),
        }),
        None,
    )?;
    Ok(true)
}

/// Inspects changes as they are written; returns how many flags were raised.
pub fn inspect(conn: &mut DbConnection, changes: &[Change<'_>]) -> Result<usize, ServiceError> {
    let mut products: HashMap<ProductId, Option<Product>> = HashMap::new();
    let ids: Vec<&DeviceId> = {
        let mut unique = std::collections::HashSet::new();
        changes
            .iter()
            .map(|c| &c.seen.device)
            .filter(|d| unique.insert(*d))
            .collect()
    };
    let devices: HashMap<DeviceId, DeviceRecord> = DeviceRecord::find_many(conn, &ids)?
        .into_iter()
        .map(|d| (d.id.clone(), d))
        .collect();
    // A fleet pulled for the first time shows the same few images over and over.
    let mut explained: HashMap<(ProductId, &str, Option<&str>, &str), bool> = HashMap::new();
    let mut raised = 0;
    for change in changes {
        let seen = change.seen;
        let Some(device) = devices.get(&seen.device) else {
            continue;
        };
        if !products.contains_key(&device.product_id) {
            let product = Product::find(conn, &device.product_id)?;
            products.insert(device.product_id.clone(), product);
        }
        let Some(product) = products.get(&device.product_id).cloned().flatten() else {
            continue;
        };
        let at = seen.last_seen_at;
        if let Some(image) = &seen.image_sha256 {
            let question = (
                product.id.clone(),
                seen.version.as_str(),
                device.platform.as_deref(),
                image.as_str(),
            );
            let explains = match explained.get(&question) {
                Some(answer) => *answer,
                None => {
                    let answer =
                        ReleaseImage::explains(conn, &product.id, &seen.version, device.platform.as_deref(), image)?;
                    explained.insert(question, answer);
                    answer
                }
            };
            if !explains {
                let detail = format!(
                    "image {image} is no published patch and no registered release image of {} {}",
                    product.slug, seen.version
                );
                let key = format!("unknown_image:{}:{}:{image}", device.id, seen.version);
                raised += usize::from(raise(
                    conn,
                    device,
                    AnomalyKind::UnknownImage,
                    detail,
                    Some(seen),
                    key,
                    at,
                )?);
            }
        }
        let Some(previous) = change.previous.filter(|p| *p != seen.version) else {
            continue;
        };
        let scheme = product.scheme();
        let backwards = match (scheme.parse(previous), scheme.parse(&seen.version)) {
            (Ok(before), Ok(now)) => now < before,
            _ => false,
        };
        let stamp = at.and_utc().timestamp();
        if backwards {
            if device.report_state != Maybe(Some(ReportState::RolledBack)) {
                let detail = format!(
                    "went from {previous} back to {} with no rollback reported",
                    seen.version
                );
                let key = format!("version_backwards:{}:{previous}:{}:{stamp}", device.id, seen.version);
                raised += usize::from(raise(
                    conn,
                    device,
                    AnomalyKind::VersionBackwards,
                    detail,
                    Some(seen),
                    key,
                    at,
                )?);
            }
        } else if !installed_to(conn, &device.id, &seen.version)? {
            let detail = format!("went from {previous} to {} with no install reported", seen.version);
            let key = format!("unannounced_change:{}:{previous}:{}:{stamp}", device.id, seen.version);
            raised += usize::from(raise(
                conn,
                device,
                AnomalyKind::UnannouncedChange,
                detail,
                Some(seen),
                key,
                at,
            )?);
        }
    }
    Ok(raised)
}

/// Flags a device that says it has held no genuine tree head for longer than its
/// `stale_after`: someone between it and the server is refusing it genuine answers
/// or feeding it frozen ones. Raised once per stale spell, with a `device.stale`
/// event beside the `anomaly` one.
pub fn stale(conn: &mut DbConnection, device: &DeviceRecord, report: &HeadReport) -> Result<bool, ServiceError> {
    let held = match report.head_age_s {
        Some(age) => format!("its newest genuine tree head is {age} s old"),
        None => "it has never held a genuine tree head".to_owned(),
    };
    let detail = format!(
        "the device says it is stale: {held}, longer than it allows; it may be cut off from genuine answers \
         or fed frozen ones"
    );
    let since = report.at.and_utc().timestamp();
    let key = format!("device_stale:{}:{since}", device.id);
    let raised = raise(
        conn,
        device,
        AnomalyKind::DeviceStale,
        detail,
        None,
        key.clone(),
        report.at,
    )?;
    if raised {
        webhooks::emit(
            conn,
            &device.customer_id,
            EventType::DeviceStale,
            serde_json::json!({
                "device": {"id": device.id, "name": device.name},
                "stale_since": utc(report.at).to_rfc3339(),
                "head_age_s": report.head_age_s,
                "version": device.version,
            }),
            Some(key),
        )?;
    }
    Ok(raised)
}

/// Flags a device unreachable since `since` while the emergency `advisory` affects it.
pub fn unreachable_in_emergency(
    conn: &mut DbConnection,
    device: &DeviceRecord,
    since: NaiveDateTime,
    advisory: &str,
) -> Result<bool, ServiceError> {
    let detail = format!(
        "no pull has succeeded since {}, and emergency advisory {advisory} affects its version",
        utc(since).to_rfc3339()
    );
    let key = format!(
        "unreachable_in_emergency:{}:{advisory}:{}",
        device.id,
        since.and_utc().timestamp()
    );
    raise(
        conn,
        device,
        AnomalyKind::UnreachableInEmergency,
        detail,
        None,
        key,
        now(),
    )
}

/// Anomalies `scope` may see, newest first: `open` ones only, acknowledged ones
/// only, or all.
pub async fn list(
    services: &Services,
    scope: &Scope,
    open: Option<bool>,
    device: Option<DeviceId>,
) -> Result<Vec<ListedAnomaly>, ServiceError> {
    let customer = scope.customer().cloned();
    Ok(services
        .db
        .query(move |conn| AnomalyRecord::list(conn, customer.as_ref(), device.as_ref(), open, LIST_LIMIT))
        .await?)
}

/// An acknowledgement, as a customer admin writes it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acknowledgement {
    #[serde(default)]
    pub comment: String,
}

/// Acknowledges an open anomaly of the caller's customer.
pub async fn acknowledge(
    services: &Services,
    caller: &Caller,
    id: String,
    ack: Acknowledgement,
) -> Result<ListedAnomaly, ServiceError> {
    let Some(customer) = caller.scope.customer().cloned() else {
        return Err(ServiceError::Forbidden(
            "anomalies are acknowledged by the customer's admins".into(),
        ));
    };
    let not_found = || ServiceError::NotFound("anomaly");
    let id: AnomalyId = id.parse().map_err(|_| not_found())?;
    let user = caller.user.clone();
    let anomaly = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                let anomaly = AnomalyRecord::find(conn, &id)?
                    .filter(|a| a.customer_id == customer)
                    .ok_or_else(not_found)?;
                let comment = text::SUMMARY.check("comment", &ack.comment, true)?;
                if let Some(at) = anomaly.acknowledged_at {
                    return Err(ServiceError::Conflict(format!(
                        "this anomaly was acknowledged at {}",
                        utc(at).to_rfc3339()
                    )));
                }
                AnomalyRecord::acknowledge(conn, &id, &user, &comment, now())?;
                let anomaly = AnomalyRecord::find(conn, &id)?.ok_or_else(not_found)?;
                let device_name = DeviceRecord::find(conn, &anomaly.device_id)?
                    .map(|d| d.name)
                    .unwrap_or_default();
                Ok(ListedAnomaly { anomaly, device_name })
            })
        })
        .await?;
    tracing::info!(anomaly.id = %anomaly.anomaly.id, user.id = %caller.user, "acknowledged anomaly");
    Ok(anomaly)
}
