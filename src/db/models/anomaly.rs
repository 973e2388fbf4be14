//! Anomaly flags: what a device did that no signed release or install report
//! explains. Each is raised once (a key names what it is about) and stays until a
//! customer admin acknowledges it, with a comment; who and when are kept.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{anomalies, devices};
use crate::db::DbConnection;
use crate::domain::AnomalyKind;
use crate::ids::{AnomalyId, CustomerId, DeviceId, UserId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = anomalies)]
pub struct AnomalyRecord {
    pub id: AnomalyId,
    pub customer_id: CustomerId,
    pub device_id: DeviceId,
    #[diesel(deserialize_as = String)]
    pub kind: AnomalyKind,
    pub detail: String,
    pub version: Option<String>,
    pub image_sha256: Option<String>,
    pub dedupe_key: String,
    pub detected_at: NaiveDateTime,
    pub acknowledged_by: Option<UserId>,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub ack_comment: Option<String>,
    /// How often it was seen while open (1 when raised).
    pub occurrences: i32,
    /// When it was last seen again, while open.
    pub last_detected_at: Option<NaiveDateTime>,
}

/// An anomaly with its device's name, for lists.
#[derive(Clone, Debug)]
pub struct ListedAnomaly {
    pub anomaly: AnomalyRecord,
    pub device_name: String,
}

impl AnomalyRecord {
    /// Raises `anomaly` unless one with its key was raised before; whether it is new.
    ///
    /// While an anomaly of the same device and kind is open (not acknowledged), a
    /// new one is not raised: the open one counts it. So one device can leave one
    /// flag of each kind to acknowledge, however much it misbehaves.
    pub fn raise(conn: &mut DbConnection, anomaly: &AnomalyRecord) -> QueryResult<bool> {
        let exists = diesel::select(diesel::dsl::exists(
            anomalies::table.filter(anomalies::dedupe_key.eq(&anomaly.dedupe_key)),
        ))
        .get_result::<bool>(conn)?;
        if exists {
            return Ok(false);
        }
        let counted = diesel::update(
            anomalies::table
                .filter(anomalies::device_id.eq(&anomaly.device_id))
                .filter(anomalies::kind.eq(anomaly.kind.as_str()))
                .filter(anomalies::acknowledged_at.is_null()),
        )
        .set((
            anomalies::occurrences.eq(anomalies::occurrences + 1),
            anomalies::last_detected_at.eq(anomaly.detected_at),
        ))
        .execute(conn)?;
        if counted > 0 {
            return Ok(false);
        }
        diesel::insert_into(anomalies::table)
            .values((
                anomalies::id.eq(&anomaly.id),
                anomalies::customer_id.eq(&anomaly.customer_id),
                anomalies::device_id.eq(&anomaly.device_id),
                anomalies::kind.eq(anomaly.kind.as_str()),
                anomalies::detail.eq(&anomaly.detail),
                anomalies::version.eq(&anomaly.version),
                anomalies::image_sha256.eq(&anomaly.image_sha256),
                anomalies::dedupe_key.eq(&anomaly.dedupe_key),
                anomalies::detected_at.eq(anomaly.detected_at),
            ))
            .execute(conn)?;
        Ok(true)
    }

    pub fn find(conn: &mut DbConnection, id: &AnomalyId) -> QueryResult<Option<AnomalyRecord>> {
        anomalies::table
            .find(id)
            .select(AnomalyRecord::as_select())
            .first(conn)
            .optional()
    }

    /// Anomalies of one customer (or all), newest first; only open ones when `open`.
    pub fn list(
        conn: &mut DbConnection,
        customer: Option<&CustomerId>,
        device: Option<&DeviceId>,
        open: Option<bool>,
        limit: i64,
    ) -> QueryResult<Vec<ListedAnomaly>> {
        let mut query = anomalies::table
            .inner_join(devices::table.on(devices::id.eq(anomalies::device_id)))
            .select((AnomalyRecord::as_select(), devices::name))
            .order((anomalies::detected_at.desc(), anomalies::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some(customer) = customer {
            query = query.filter(anomalies::customer_id.eq(customer));
        }
        if let Some(device) = device {
            query = query.filter(anomalies::device_id.eq(device));
        }
        match open {
            Some(true) => query = query.filter(anomalies::acknowledged_at.is_null()),
            Some(false) => query = query.filter(anomalies::acknowledged_at.is_not_null()),
            None => {}
        }
        Ok(query
            .load::<(AnomalyRecord, String)>(conn)?
            .into_iter()
            .map(|(anomaly, device_name)| ListedAnomaly { anomaly, device_name })
            .collect())
    }

    /// Acknowledges an open anomaly; whether it was open.
    pub fn acknowledge(
        conn: &mut DbConnection,
        id: &AnomalyId,
        by: &UserId,
        comment: &str,
        at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let changed = diesel::update(anomalies::table.find(id).filter(anomalies::acknowledged_at.is_null()))
            .set((
                anomalies::acknowledged_by.eq(by),
                anomalies::acknowledged_at.eq(at),
                anomalies::ack_comment.eq(comment),
            ))
            .execute(conn)?;
        Ok(changed == 1)
    }
}
