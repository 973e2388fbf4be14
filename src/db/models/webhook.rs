//! Webhook subscriptions, the events written for them (an outbox, in the
//! transaction of what caused them) and their deliveries, each retried until it
//! succeeds or a day has passed. Deliveries are claimed with a lease, like pulls.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamp};

use crate::db::schema::{webhook_deliveries, webhook_events, webhooks};
use crate::db::DbConnection;
use crate::domain::{DeliveryState, EventType, EventTypes};
use crate::ids::{CustomerId, DeliveryId, UserId, WebhookId};

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = webhooks)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub customer_id: CustomerId,
    pub url: String,
    /// Stored comma-separated, read as their types.
    #[diesel(deserialize_as = String)]
    pub events: EventTypes,
    pub secret_sealed: String,
    pub created_by: UserId,
    pub created_at: NaiveDateTime,
    pub deleted_at: Option<NaiveDateTime>,
}

impl WebhookRecord {
    pub fn insert(conn: &mut DbConnection, hook: &WebhookRecord) -> QueryResult<()> {
        diesel::insert_into(webhooks::table)
            .values((
                webhooks::id.eq(&hook.id),
                webhooks::customer_id.eq(&hook.customer_id),
                webhooks::url.eq(&hook.url),
                webhooks::events.eq(hook.events.to_text()),
                webhooks::secret_sealed.eq(&hook.secret_sealed),
                webhooks::created_by.eq(&hook.created_by),
                webhooks::created_at.eq(hook.created_at),
            ))
            .execute(conn)
            .map(drop)
    }

    pub fn find(conn: &mut DbConnection, id: &WebhookId) -> QueryResult<Option<WebhookRecord>> {
        webhooks::table
            .find(id)
            .filter(webhooks::deleted_at.is_null())
            .select(WebhookRecord::as_select())
            .first(conn)
            .optional()
    }

    /// A customer's live webhooks, oldest first.
    pub fn of_customer(conn: &mut DbConnection, customer: &CustomerId) -> QueryResult<Vec<WebhookRecord>> {
        webhooks::table
            .filter(webhooks::customer_id.eq(customer))
            .filter(webhooks::deleted_at.is_null())
            .order(webhooks::created_at)
            .select(WebhookRecord::as_select())
            .load(conn)
    }

    /// Deletes a webhook: it gets nothing more, and its pending deliveries stop.
    pub fn delete(conn: &mut DbConnection, id: &WebhookId, at: NaiveDateTime) -> QueryResult<bool> {
        let changed = diesel::update(webhooks::table.find(id).filter(webhooks::deleted_at.is_null()))
            .set(webhooks::deleted_at.eq(at))
            .execute(conn)?;
        diesel::update(
            webhook_deliveries::table
                .filter(webhook_deliveries::webhook_id.eq(id))
                .filter(webhook_deliveries::state.eq(DeliveryState::Pending.as_str())),
        )
        .set((
            webhook_deliveries::state.eq(DeliveryState::Failed.as_str()),
            webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
            webhook_deliveries::last_error.eq("the webhook was deleted"),
        ))
        .execute(conn)?;
        Ok(changed == 1)
    }
}

/// An event as queued.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = webhook_events)]
pub struct EventRecord {
    pub id: String,
    pub customer_id: CustomerId,
    #[diesel(deserialize_as = String)]
    pub event_type: EventType,
    pub payload: String,
    pub dedupe_key: Option<String>,
    pub created_at: NaiveDateTime,
}

impl EventRecord {
    /// Queues `event` unless one with its key exists; whether it is new.
    pub fn insert(conn: &mut DbConnection, event: &EventRecord) -> QueryResult<bool> {
        if let Some(key) = &event.dedupe_key {
            let exists = diesel::select(diesel::dsl::exists(
                webhook_events::table.filter(webhook_events::dedupe_key.eq(key)),
            ))
            .get_result::<bool>(conn)?;
            if exists {
                return Ok(false);
            }
        }
        diesel::insert_into(webhook_events::table)
            .values((
                webhook_events::id.eq(&event.id),
                webhook_events::customer_id.eq(&event.customer_id),
                webhook_events::event_type.eq(event.event_type.as_str()),
                webhook_events::payload.eq(&event.payload),
                webhook_events::dedupe_key.eq(&event.dedupe_key),
                webhook_events::created_at.eq(event.created_at),
            ))
            .execute(conn)?;
        Ok(true)
    }

    /// Whether an event with `key` was queued.
    pub fn exists(conn: &mut DbConnection, key: &str) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            webhook_events::table.filter(webhook_events::dedupe_key.eq(key)),
        ))
        .get_result(conn)
    }
}

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = webhook_deliveries)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    pub webhook_id: WebhookId,
    pub event_id: String,
    #[diesel(deserialize_as = String)]
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub give_up_at: NaiveDateTime,
    pub lease_holder: Option<String>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<NaiveDateTime>,
    pub delivered_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
}

/// A delivery with its event, as the log shows it.
#[derive(Clone, Debug)]
pub struct LoggedDelivery {
    pub delivery: DeliveryRecord,
    pub event_type: EventType,
}

/// A claimed delivery: what the sender needs.
#[derive(Clone, Debug, QueryableByName)]
pub struct ClaimedDelivery {
    #[diesel(sql_type = Text)]
    pub id: DeliveryId,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Timestamp)]
    pub give_up_at: NaiveDateTime,
    #[diesel(sql_type = Text)]
    pub url: String,
    #[diesel(sql_type = Text)]
    pub webhook_id: WebhookId,
    #[diesel(sql_type = Text)]
    pub secret_sealed: String,
    #[diesel(sql_type = Text)]
    pub payload: String,
    #[diesel(sql_type = Text)]
    pub customer_id: CustomerId,
}

/// How one attempt ended.
#[derive(Clone, Debug)]
pub struct Attempt {
    pub at: NaiveDateTime,
    pub status: Option<i32>,
    pub error: Option<String>,
    /// When to try again; `None` once delivered or given up.
    pub retry_at: Option<NaiveDateTime>,
}

impl DeliveryRecord {
    /// Queues a delivery of `event` to `webhook`, due at `at`.
    pub fn queue(
        conn: &mut DbConnection,
        webhook: &WebhookId,
        event: &str,
        at: NaiveDateTime,
        give_up_at: NaiveDateTime,
    ) -> QueryResult<DeliveryId> {
        let id = DeliveryId::generate();
        diesel::insert_into(webhook_deliveries::table)
            .values((
                webhook_deliveries::id.eq(&id),
                webhook_deliveries::webhook_id.eq(webhook),
                webhook_deliveries::event_id.eq(event),
                webhook_deliveries::state.eq(DeliveryState::Pending.as_str()),
                webhook_deliveries::attempts.eq(0),
                webhook_deliveries::next_attempt_at.eq(at),
                webhook_deliveries::give_up_at.eq(give_up_at),
                webhook_deliveries::created_at.eq(at),
            ))
            .execute(conn)?;
        Ok(id)
    }

    pub fn find(conn: &mut DbConnection, id: &DeliveryId) -> QueryResult<Option<DeliveryRecord>> {
        webhook_deliveries::table
            .find(id)
            .select(DeliveryRecord::as_select())
            .first(conn)
            .optional()
    }

    /// The newest deliveries of a webhook.
    pub fn log(conn: &mut DbConnection, webhook: &WebhookId, limit: i64) -> QueryResult<Vec<LoggedDelivery>> {
        Ok(webhook_deliveries::table
            .inner_join(webhook_events::table)
            .filter(webhook_deliveries::webhook_id.eq(webhook))
            .order((webhook_deliveries::created_at.desc(), webhook_deliveries::id.desc()))
            .limit(limit)
            .select((DeliveryRecord::as_select(), webhook_events::event_type))
            .load::<(DeliveryRecord, String)>(conn)?
            .into_iter()
            .filter_map(|(delivery, kind)| {
                Some(LoggedDelivery {
                    delivery,
                    event_type: kind.parse().ok()?,
                })
            })
            .collect())
    }

    /// Claims up to `limit` deliveries due at `at` for `holder` until `until`.
    ///
    /// Claims are shared between customers in turns: every customer's first due
    /// delivery comes before any customer's second, and so on, at most `per_customer`
    /// of each, none of the customers in `full` (a comma-separated list of those
    /// with as many in flight as they may have). So one customer's backlog cannot
    /// hold up another's deliveries. The lease is re-checked in the update itself,
    /// so two instances never claim one delivery.
    pub fn claim_due(
        conn: &mut DbConnection,
        holder: &str,
        at: NaiveDateTime,
        until: NaiveDateTime,
        limit: i64,
        per_customer: i64,
        full: &str,
    ) -> QueryResult<Vec<ClaimedDelivery>> {
        let sql = match conn {
            DbConnection::Sqlite(_) => {
                "UPDATE webhook_deliveries SET lease_holder = ?, lease_until = ? WHERE id IN (\
                 SELECT id FROM (SELECT d.id, d.next_attempt_at, ROW_NUMBER() OVER \
                 (PARTITION BY w.customer_id ORDER BY d.next_attempt_at) AS turn \
                 FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.state = 'pending' AND d.next_attempt_at <= ? \
                 AND (d.lease_until IS NULL OR d.lease_until < ?) \
                 AND instr(',' || ? || ',', ',' || w.customer_id || ',') = 0) \
                 WHERE turn <= ? ORDER BY turn, next_attempt_at LIMIT ?) \
                 AND (lease_until IS NULL OR lease_until < ?) \
                 RETURNING id, event_id, attempts, give_up_at, webhook_id, \
                 (SELECT url FROM webhooks WHERE webhooks.id = webhook_id) AS url, \
                 (SELECT secret_sealed FROM webhooks WHERE webhooks.id = webhook_id) AS secret_sealed, \
                 (SELECT payload FROM webhook_events WHERE webhook_events.id = event_id) AS payload, \
                 (SELECT customer_id FROM webhooks WHERE webhooks.id = webhook_id) AS customer_id"
            }
            DbConnection::Postgres(_) => {
                "UPDATE webhook_deliveries d SET lease_holder = $1, lease_until = $2 FROM webhooks w, webhook_events e \
                 WHERE d.id IN (SELECT d3.id FROM webhook_deliveries d3 JOIN (SELECT d2.id, ROW_NUMBER() OVER \
                 (PARTITION BY w2.customer_id ORDER BY d2.next_attempt_at) AS turn \
                 FROM webhook_deliveries d2 JOIN webhooks w2 ON w2.id = d2.webhook_id \
                 WHERE d2.state = 'pending' AND d2.next_attempt_at <= $3 \
                 AND (d2.lease_until IS NULL OR d2.lease_until < $4) \
                 AND NOT (w2.customer_id = ANY(string_to_array($5, ',')))) ranked ON ranked.id = d3.id \
                 WHERE ranked.turn <= $6 ORDER BY ranked.turn, d3.next_attempt_at LIMIT $7 \
                 FOR UPDATE OF d3 SKIP LOCKED) \
                 AND (d.lease_until IS NULL OR d.lease_until < $8) \
                 AND w.id = d.webhook_id AND e.id = d.event_id \
                 RETURNING d.id, d.event_id, d.attempts, d.give_up_at, d.webhook_id, w.url, w.secret_sealed, e.payload, \
                 w.customer_id"
            }
        };
        diesel::sql_query(sql)
            .bind::<Text, _>(holder)
            .bind::<Timestamp, _>(until)
            .bind::<Timestamp, _>(at)
            .bind::<Timestamp, _>(at)
            .bind::<Text, _>(full)
            .bind::<BigInt, _>(per_customer)
            .bind::<BigInt, _>(limit)
            .bind::<Timestamp, _>(at)
            .load(conn)
    }

    /// Writes how an attempt ended and releases the lease `holder` holds.
    pub fn finish(conn: &mut DbConnection, holder: &str, id: &DeliveryId, attempt: &Attempt) -> QueryResult<()> {
        let state = match (attempt.error.is_none(), attempt.retry_at) {
            (true, _) => DeliveryState::Delivered,
            (false, Some(_)) => DeliveryState::Pending,
            (false, None) => DeliveryState::Failed,
        };
        diesel::update(
            webhook_deliveries::table
                .find(id)
                .filter(webhook_deliveries::lease_holder.eq(holder)),
        )
        .set((
            webhook_deliveries::state.eq(state.as_str()),
            webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
            webhook_deliveries::next_attempt_at.eq(attempt.retry_at),
            webhook_deliveries::lease_holder.eq(None::<String>),
            webhook_deliveries::lease_until.eq(None::<NaiveDateTime>),
            webhook_deliveries::last_status.eq(attempt.status),
            webhook_deliveries::last_error.eq(&attempt.error),
            webhook_deliveries::last_attempt_at.eq(attempt.at),
            webhook_deliveries::delivered_at.eq(attempt.error.is_none().then_some(attempt.at)),
        ))
        .execute(conn)
        .map(drop)
    }

    /// Sends a delivery again from now on, for another day (the same event, so the
    /// same id for the receiver to recognise).
    pub fn send_again(
        conn: &mut DbConnection,
        id: &DeliveryId,
        at: NaiveDateTime,
        give_up_at: NaiveDateTime,
    ) -> QueryResult<bool> {
        let changed = diesel::update(webhook_deliveries::table.find(id))
            .set((
                webhook_deliveries::state.eq(DeliveryState::Pending.as_str()),
                webhook_deliveries::next_attempt_at.eq(at),
                webhook_deliveries::give_up_at.eq(give_up_at),
            ))
            .execute(conn)?;
        Ok(changed == 1)
    }
}
