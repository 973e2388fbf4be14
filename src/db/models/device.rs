//! Devices of customers' fleets with their labels, and the change counters that
//! every instance reads to keep its in-memory copy of devices and of the offer
//! catalogue in step with the database.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Bool, Nullable};

use crate::db::schema::{customers, device_labels, devices, fleet_state, products};
use crate::db::{DbBackend, DbConnection};
use crate::domain::fleet::Labels;
use crate::domain::state::Maybe;
use crate::domain::{ObservationSource, ReportState};
use crate::ids::{CustomerId, DeviceId, EnrollmentTokenId, ObservationId, PatchId, ProductId};

use super::ROWS_PER_INSERT;

/// Ids per `IN (...)` list, within the bind-parameter limits of both backends.
const IDS_PER_QUERY: usize = 10_000;

#[derive(Clone, Debug, Queryable, Selectable, Identifiable)]
#[diesel(table_name = devices)]
pub struct DeviceRecord {
    pub id: DeviceId,
    pub customer_id: CustomerId,
    pub product_id: ProductId,
    pub name: String,
    pub platform: Option<String>,
    /// Stored as a JSON object, read as checked labels.
    #[diesel(deserialize_as = String)]
    pub labels: Labels,
    pub token_lookup: String,
    pub token_hash: String,
    pub enrollment_token_id: Option<EnrollmentTokenId>,
    /// The version it runs, as last seen by a poll, a pull or an administrator.
    pub version: Option<String>,
    pub image_sha256: Option<String>,
    #[diesel(deserialize_as = Option<String>)]
    pub version_source: Maybe<ObservationSource>,
    /// The newest row of its observation history.
    pub latest_observation_id: Option<ObservationId>,
    pub last_seen_at: Option<NaiveDateTime>,
    /// The latest install report: which patch, what step, when.
    pub report_patch_id: Option<PatchId>,
    #[diesel(deserialize_as = Option<String>)]
    pub report_state: Maybe<ReportState>,
    pub report_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub decommissioned_at: Option<NaiveDateTime>,
    pub change_seq: i64,
    /// How old the newest genuine tree head it holds was, as it last said.
    pub head_age_s: Option<i64>,
    /// Since when it has said it holds no genuine head newer than its `stale_after`.
    pub stale_since: Option<NaiveDateTime>,
}

/// What authenticating a device and answering its poll need of its row.
#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = devices)]
pub struct DeviceKey {
    pub id: DeviceId,
    pub customer_id: CustomerId,
    pub product_id: ProductId,
    pub platform: Option<String>,
    pub token_lookup: String,
    pub token_hash: String,
    pub decommissioned_at: Option<NaiveDateTime>,
    pub stale_since: Option<NaiveDateTime>,
}

/// The orders the device list offers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceOrder {
    #[default]
    Name,
    NameDesc,
    /// Most recently seen first; never seen last.
    SeenNewest,
    /// Never seen first, then the longest silent.
    SeenOldest,
}

impl DeviceOrder {
    pub const ALL: [DeviceOrder; 4] = [
        DeviceOrder::Name,
        DeviceOrder::NameDesc,
        DeviceOrder::SeenNewest,
        DeviceOrder::SeenOldest,
    ];

    /// As written in a query string.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceOrder::Name => "name",
            DeviceOrder::NameDesc => "name_desc",
            DeviceOrder::SeenNewest => "seen_newest",
            DeviceOrder::SeenOldest => "seen_oldest",
        }
    }

    /// As a person reads it.
    pub fn label(self) -> &'static str {
        match self {
            DeviceOrder::Name => "name A–Z",
            DeviceOrder::NameDesc => "name Z–A",
            DeviceOrder::SeenNewest => "seen most recently",
            DeviceOrder::SeenOldest => "silent longest",
        }
    }
}

/// Filters of a device list; every one narrows it.
#[derive(Clone, Debug, Default)]
pub struct DeviceFilter {
    pub customer: Option<CustomerId>,
    pub products: Option<Vec<ProductId>>,
    /// Devices running one of these versions.
    pub versions: Option<Vec<String>>,
    /// Devices of these products running one of the versions listed for the
    /// product (with `unknown_version`: or whose version is unknown).
    pub product_versions: Option<Vec<(ProductId, Vec<String>)>>,
    pub unknown_version: bool,
    pub label: Option<(String, String)>,
    pub report_states: Option<Vec<String>>,
    pub report_patches: Option<Vec<PatchId>>,
    pub report_before: Option<NaiveDateTime>,
    pub include_decommissioned: bool,
}

/// A device with its customer's and its product's slugs.
pub type NamedDevice = (DeviceRecord, String, String);

type BoxedDevices<'a> = devices::BoxedQuery<'a, DbBackend>;

impl DeviceRecord {
    /// Inserts a device with its labels.
    pub fn insert(conn: &mut DbConnection, device: &DeviceRecord) -> QueryResult<()> {
        Self::insert_all(conn, &[device])
    }

    /// Inserts devices with their labels in bulk.
    pub fn insert_all(conn: &mut DbConnection, devices: &[&DeviceRecord]) -> QueryResult<()> {
        let rows: Vec<_> = devices
            .iter()
            .map(|device| {
                (
                    devices::id.eq(&device.id),
                    devices::customer_id.eq(&device.customer_id),
                    devices::product_id.eq(&device.product_id),
                    devices::name.eq(&device.name),
                    devices::platform.eq(&device.platform),
                    devices::labels.eq(device.labels.to_json()),
                    devices::token_lookup.eq(&device.token_lookup),
                    devices::token_hash.eq(&device.token_hash),
                    devices::enrollment_token_id.eq(&device.enrollment_token_id),
                    devices::version.eq(&device.version),
                    devices::version_source.eq(device.version_source.0.map(|s| s.as_str())),
                    devices::latest_observation_id.eq(&device.latest_observation_id),
                    devices::created_at.eq(device.created_at),
                    devices::change_seq.eq(device.change_seq),
                )
            })
            .collect();
        insert_many!(&mut *conn, devices::table, &rows);
        let labels: Vec<_> = devices
            .iter()
            .flat_map(|device| {
                device.labels.iter().map(|(name, value)| {
                    (
                        device_labels::device_id.eq(&device.id),
                        device_labels::name.eq(name),
                        device_labels::value.eq(value),
                    )
                })
            })
            .collect();
        insert_many!(&mut *conn, device_labels::table, &labels);
        Ok(())
    }

    /// The devices `ids` that exist, in no particular order.
    pub fn find_many(conn: &mut DbConnection, ids: &[&DeviceId]) -> QueryResult<Vec<DeviceRecord>> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_QUERY) {
            found.extend(
                devices::table
                    .filter(devices::id.eq_any(chunk))
                    .select(DeviceRecord::as_select())
                    .load(conn)?,
            );
        }
        Ok(found)
    }

    /// Makes each `(device, row)`'s row the device's latest history row: one
    /// statement per thousand devices.
    pub fn set_latest_rows(conn: &mut DbConnection, rows: &[(&DeviceId, &ObservationId)]) -> QueryResult<()> {
        use diesel::sql_types::Text;
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            let (placeholders, sql_of): (Vec<String>, fn(&str) -> String) = match conn {
                DbConnection::Postgres(_) => (
                    (0..chunk.len())
                        .map(|n| format!("(${}, ${})", 2 * n + 1, 2 * n + 2))
                        .collect(),
                    |values| {
                        format!(
                            "UPDATE devices SET latest_observation_id = v.row_id \
                             FROM (VALUES {values}) AS v(device_id, row_id) WHERE devices.id = v.device_id"
                        )
                    },
                ),
                DbConnection::Sqlite(_) => (vec!["(?, ?)".to_owned(); chunk.len()], |values| {
                    format!(
                        "UPDATE devices SET latest_observation_id = v.column2 \
                             FROM (VALUES {values}) AS v WHERE devices.id = v.column1"
                    )
                }),
            };
            let sql = sql_of(&placeholders.join(", "));
            let mut query = diesel::sql_query(sql).into_boxed::<crate::db::DbBackend>();
            for (device, row) in chunk {
                query = query.bind::<Text, _>(device.as_str()).bind::<Text, _>(row.as_str());
            }
            query.execute(conn)?;
        }
        Ok(())
    }

    pub fn find(conn: &mut DbConnection, id: &DeviceId) -> QueryResult<Option<DeviceRecord>> {
        devices::table
            .find(id)
            .select(DeviceRecord::as_select())
            .first(conn)
            .optional()
    }

    /// The device and its customer's slug.
    pub fn find_with_customer(conn: &mut DbConnection, id: &DeviceId) -> QueryResult<Option<(DeviceRecord, String)>> {
        devices::table
            .inner_join(customers::table)
            .filter(devices::id.eq(id))
            .select((DeviceRecord::as_select(), customers::slug))
            .first(conn)
            .optional()
    }

    fn filtered(filter: &DeviceFilter) -> BoxedDevices<'static> {
        let mut query = devices::table.into_boxed();
        if !filter.include_decommissioned {
            query = query.filter(devices::decommissioned_at.is_null());
        }
        if let Some(customer) = &filter.customer {
            query = query.filter(devices::customer_id.eq(customer.clone()));
        }
        match filter.products.as_deref() {
            // One product (an advisory's usual case) as `=`: PostgreSQL then walks
            // the name-ordered index for a page instead of sorting every device.
            Some([product]) => query = query.filter(devices::product_id.eq(product.clone())),
            Some(products) => query = query.filter(devices::product_id.eq_any(products.to_vec())),
            None => {}
        }
        if let Some(versions) = &filter.versions {
            query = query.filter(devices::version.eq_any(versions.clone()));
        }
        if let Some(pairs) = &filter.product_versions {
            let mut matches: Box<dyn BoxableExpression<devices::table, DbBackend, SqlType = Nullable<Bool>>> =
                if filter.unknown_version {
                    Box::new(devices::version.is_null().nullable())
                } else {
                    Box::new(diesel::dsl::sql::<Nullable<Bool>>("1 = 0"))
                };
            for (product, versions) in pairs {
                matches = Box::new(
                    matches.or(devices::product_id
                        .eq(product.clone())
                        .nullable()
                        .and(devices::version.eq_any(versions.clone()))),
                );
            }
            query = query.filter(matches);
        }
        if let Some((name, value)) = &filter.label {
            let labelled = device_labels::table
                .filter(device_labels::name.eq(name.clone()))
                .filter(device_labels::value.eq(value.clone()))
                .select(device_labels::device_id);
            query = query.filter(devices::id.eq_any(labelled));
        }
        if let Some(states) = &filter.report_states {
            query = query.filter(devices::report_state.eq_any(states.clone()));
        }
        if let Some(patches) = &filter.report_patches {
            query = query.filter(devices::report_patch_id.eq_any(patches.clone()));
        }
        if let Some(before) = filter.report_before {
            query = query.filter(devices::report_at.lt(before));
        }
        query
    }

    /// One page of the devices `filter` selects, by name, and how many there are.
    pub fn list(
        conn: &mut DbConnection,
        filter: &DeviceFilter,
        offset: i64,
        limit: i64,
    ) -> QueryResult<(Vec<NamedDevice>, i64)> {
        let total = Self::count_matching(conn, filter)?;
        Ok((Self::page(conn, filter, offset, limit)?, total))
    }

    /// How many devices `filter` selects.
    pub fn count_matching(conn: &mut DbConnection, filter: &DeviceFilter) -> QueryResult<i64> {
        Self::filtered(filter).count().get_result(conn)
    }

    /// One page of the devices `filter` selects, by name, without counting them.
    pub fn page(
        conn: &mut DbConnection,
        filter: &DeviceFilter,
        offset: i64,
        limit: i64,
    ) -> QueryResult<Vec<NamedDevice>> {
        let ids: Vec<DeviceId> = Self::filtered(filter)
            .order((devices::name.asc(), devices::id.asc()))
            .offset(offset)
            .limit(limit)
            .select(devices::id)
            .load(conn)?;
        Self::named_in_order(conn, &ids)
    }

    /// The devices `ids` with their customer's and product's slugs, in that order.
    fn named_in_order(conn: &mut DbConnection, ids: &[DeviceId]) -> QueryResult<Vec<NamedDevice>> {
        let mut found: std::collections::HashMap<DeviceId, NamedDevice> = devices::table
            .inner_join(customers::table)
            .inner_join(products::table)
            .filter(devices::id.eq_any(ids))
            .select((DeviceRecord::as_select(), customers::slug, products::slug))
            .load::<NamedDevice>(conn)?
            .into_iter()
            .map(|named| (named.0.id.clone(), named))
            .collect();
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// One page of the devices `filter` selects in `order`, starting after the
    /// device `after` (none: from the start): a keyset page, as quick deep in a large
    /// fleet as at its start. `None` when `after` names no device.
    pub fn page_after(
        conn: &mut DbConnection,
        filter: &DeviceFilter,
        order: DeviceOrder,
        after: Option<&DeviceId>,
        limit: i64,
    ) -> QueryResult<Option<Vec<NamedDevice>>> {
        let anchor: Option<(DeviceId, String, Option<NaiveDateTime>)> = match after {
            None => None,
            Some(id) => match devices::table
                .find(id)
                .select((devices::id, devices::name, devices::last_seen_at))
                .first(conn)
                .optional()?
            {
                None => return Ok(None),
                found => found,
            },
        };
        let ids: Vec<DeviceId> = match order {
            DeviceOrder::Name | DeviceOrder::NameDesc => {
                let mut query = Self::filtered(filter);
                let descending = order == DeviceOrder::NameDesc;
                if let Some((id, name, _)) = anchor {
                    // A row-value comparison, which both backends answer from the
                    // (…, name, id) indexes; the same `name < x OR (name = x AND …)`
                    // made SQLite read every row before the anchor.
                    let after = diesel::dsl::sql::<Bool>(if descending {
                        "(devices.name, devices.id) < ("
                    } else {
                        "(devices.name, devices.id) > ("
                    })
                    .bind::<diesel::sql_types::Text, _>(name)
                    .sql(", ")
                    .bind::<diesel::sql_types::Text, _>(id.to_string())
                    .sql(")");
                    query = query.filter(after);
                }
                query = if descending {
                    query.order((devices::name.desc(), devices::id.desc()))
                } else {
                    query.order((devices::name.asc(), devices::id.asc()))
                };
                query.limit(limit).select(devices::id).load(conn)?
            }
            DeviceOrder::SeenNewest | DeviceOrder::SeenOldest => {
                Self::seen_page(conn, filter, order == DeviceOrder::SeenNewest, anchor, limit)?
            }
        };
        Self::named_in_order(conn, &ids).map(Some)
    }

    /// A keyset page by `last_seen_at`. Devices never seen come last when the newest
    /// come first and first when the oldest do, on both backends: the two parts are
    /// read apart, the never-seen ones by id.
    fn seen_page(
        conn: &mut DbConnection,
        filter: &DeviceFilter,
        newest_first: bool,
        anchor: Option<(DeviceId, String, Option<NaiveDateTime>)>,
        limit: i64,
    ) -> QueryResult<Vec<DeviceId>> {
        let seen_part = |conn: &mut DbConnection, after: Option<(DeviceId, NaiveDateTime)>, limit: i64| {
            let mut query = Self::filtered(filter).filter(devices::last_seen_at.is_not_null());
            if let Some((id, at)) = after {
                query = if newest_first {
                    query.filter(
                        devices::last_seen_at
                            .lt(at)
                            .or(devices::last_seen_at.eq(at).and(devices::id.lt(id))),
                    )
                } else {
                    query.filter(
                        devices::last_seen_at
                            .gt(at)
                            .or(devices::last_seen_at.eq(at).and(devices::id.gt(id))),
                    )
                };
            }
            query = if newest_first {
                query.order((devices::last_seen_at.desc(), devices::id.desc()))
            } else {
                query.order((devices::last_seen_at.asc(), devices::id.asc()))
            };
            query.limit(limit).select(devices::id).load::<DeviceId>(conn)
        };
        let never_part = |conn: &mut DbConnection, after: Option<DeviceId>, limit: i64| {
            let mut query = Self::filtered(filter).filter(devices::last_seen_at.is_null());
            if let Some(id) = after {
                query = query.filter(devices::id.gt(id));
            }
            query
                .order(devices::id.asc())
                .limit(limit)
                .select(devices::id)
                .load::<DeviceId>(conn)
        };
        // Where the anchor is: among the seen devices (with its time) or the never seen.
        let (in_seen, seen_after, never_after) = match anchor {
            None => (newest_first, None, None),
            Some((id, _, Some(at))) => (true, Some((id, at)), None),
            Some((id, _, None)) => (false, None, Some(id)),
        };
        let mut ids = Vec::new();
        if newest_first {
            if in_seen {
                ids = seen_part(conn, seen_after, limit)?;
            }
            let left = limit - ids.len() as i64;
            if left > 0 {
                ids.extend(never_part(conn, never_after, left)?);
            }
        } else {
            if !in_seen {
                ids = never_part(conn, never_after, limit)?;
            }
            let left = limit - ids.len() as i64;
            if left > 0 {
                ids.extend(seen_part(conn, seen_after, left)?);
            }
        }
        Ok(ids)
    }

    /// How many live devices each customer has.
    pub fn count_by_customer(conn: &mut DbConnection) -> QueryResult<Vec<(CustomerId, i64)>> {
        devices::table
            .filter(devices::decommissioned_at.is_null())
            .group_by(devices::customer_id)
            .select((devices::customer_id, diesel::dsl::count_star()))
            .load(conn)
    }

    /// Every device `filter` selects, by name, for an export.
    pub fn all(conn: &mut DbConnection, filter: &DeviceFilter) -> QueryResult<Vec<NamedDevice>> {
        let ids: Vec<DeviceId> = Self::filtered(filter)
            .order((devices::name.asc(), devices::id.asc()))
            .select(devices::id)
            .load(conn)?;
        let mut named = Vec::with_capacity(ids.len());
        // Within the bind-parameter limits of both backends.
        for chunk in ids.chunks(10_000) {
            named.extend(
                devices::table
                    .inner_join(customers::table)
                    .inner_join(products::table)
                    .filter(devices::id.eq_any(chunk))
                    .order((devices::name.asc(), devices::id.asc()))
                    .select((DeviceRecord::as_select(), customers::slug, products::slug))
                    .load::<NamedDevice>(conn)?,
            );
        }
        named.sort_by(|a, b| (&a.0.name, &a.0.id).cmp(&(&b.0.name, &b.0.id)));
        Ok(named)
    }

    /// Devices changed after generation `after` (decommissioned ones included, so a
    /// reader learns to drop them), with what authenticating them needs.
    /// A page of them at a time: `limit` after the device `from`, by id.
    pub fn changed_since(
        conn: &mut DbConnection,
        after: i64,
        from: Option<&DeviceId>,
        limit: i64,
    ) -> QueryResult<Vec<DeviceKey>> {
        let mut query = devices::table.filter(devices::change_seq.gt(after)).into_boxed();
        if let Some(from) = from {
            query = query.filter(devices::id.gt(from.clone()));
        }
        query
            .order(devices::id.asc())
            .limit(limit)
            .select(DeviceKey::as_select())
            .load(conn)
    }

    /// Marks the device decommissioned at `at` as change `seq`; whether it was live.
    pub fn decommission(conn: &mut DbConnection, id: &DeviceId, at: NaiveDateTime, seq: i64) -> QueryResult<bool> {
        let changed = diesel::update(devices::table.find(id).filter(devices::decommissioned_at.is_null()))
            .set((devices::decommissioned_at.eq(at), devices::change_seq.eq(seq)))
            .execute(conn)?;
        Ok(changed == 1)
    }

    /// Records what the device was seen running.
    pub fn set_running(
        conn: &mut DbConnection,
        ids: &[&DeviceId],
        version: &str,
        image_sha256: Option<&str>,
        source: ObservationSource,
    ) -> QueryResult<usize> {
        diesel::update(devices::table.filter(devices::id.eq_any(ids)))
            .set((
                devices::version.eq(version),
                devices::image_sha256.eq(image_sha256),
                devices::version_source.eq(source.as_str()),
            ))
            .execute(conn)
    }

    /// Live devices of `customer` (all customers' when `None`) that say they are
    /// stale, longest stale first: at most `limit`.
    pub fn stale(conn: &mut DbConnection, customer: Option<&CustomerId>, limit: i64) -> QueryResult<Vec<DeviceRecord>> {
        let mut query = devices::table
            .filter(devices::stale_since.is_not_null())
            .filter(devices::decommissioned_at.is_null())
            .into_boxed();
        if let Some(customer) = customer {
            query = query.filter(devices::customer_id.eq(customer.clone()));
        }
        query
            .order((devices::stale_since.asc(), devices::id.asc()))
            .limit(limit)
            .select(DeviceRecord::as_select())
            .load(conn)
    }

    /// Records that the device said it is stale, with the age of its newest genuine
    /// head; whether it was not stale before (then it is marked as of `at`, as
    /// change `seq`).
    pub fn mark_stale(
        conn: &mut DbConnection,
        id: &DeviceId,
        head_age_s: Option<i64>,
        at: NaiveDateTime,
        seq: &mut impl FnMut(&mut DbConnection) -> QueryResult<i64>,
    ) -> QueryResult<bool> {
        let already = diesel::update(devices::table.find(id).filter(devices::stale_since.is_not_null()))
            .set(devices::head_age_s.eq(head_age_s))
            .execute(conn)?;
        if already == 1 {
            return Ok(false);
        }
        let change = seq(conn)?;
        let marked = diesel::update(devices::table.find(id).filter(devices::stale_since.is_null()))
            .set((
                devices::stale_since.eq(at),
                devices::head_age_s.eq(head_age_s),
                devices::change_seq.eq(change),
            ))
            .execute(conn)?;
        Ok(marked == 1)
    }

    /// Records that the device said it holds a genuine head again; whether it had
    /// been stale (then that ends, as change `seq`).
    pub fn mark_fresh(
        conn: &mut DbConnection,
        id: &DeviceId,
        head_age_s: Option<i64>,
        seq: &mut impl FnMut(&mut DbConnection) -> QueryResult<i64>,
    ) -> QueryResult<bool> {
        let stale = diesel::select(diesel::dsl::exists(
            devices::table.find(id).filter(devices::stale_since.is_not_null()),
        ))
        .get_result::<bool>(conn)?;
        if !stale {
            return Ok(false);
        }
        let change = seq(conn)?;
        diesel::update(devices::table.find(id))
            .set((
                devices::stale_since.eq(None::<NaiveDateTime>),
                devices::head_age_s.eq(head_age_s),
                devices::change_seq.eq(change),
            ))
            .execute(conn)?;
        Ok(true)
    }

    /// Moves `last_seen_at` of devices `ids` forward to `at` (never back).
    pub fn seen(conn: &mut DbConnection, ids: &[&DeviceId], at: NaiveDateTime) -> QueryResult<usize> {
        diesel::update(
            devices::table
                .filter(devices::id.eq_any(ids))
                .filter(devices::last_seen_at.is_null().or(devices::last_seen_at.lt(at))),
        )
        .set(devices::last_seen_at.eq(at))
        .execute(conn)
    }

    /// Records the latest install report.
    pub fn set_report(
        conn: &mut DbConnection,
        id: &DeviceId,
        patch: &PatchId,
        state: ReportState,
        at: NaiveDateTime,
    ) -> QueryResult<usize> {
        diesel::update(devices::table.find(id))
            .set((
                devices::report_patch_id.eq(patch),
                devices::report_state.eq(state.as_str()),
                devices::report_at.eq(at),
            ))
            .execute(conn)
    }

    /// The labels of a device, by name.
    pub fn labels(conn: &mut DbConnection, id: &DeviceId) -> QueryResult<Vec<(String, String)>> {
        device_labels::table
            .filter(device_labels::device_id.eq(id))
            .order(device_labels::name.asc())
            .select((device_labels::name, device_labels::value))
            .load(conn)
    }
}

/// The change counters of the fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Queryable)]
pub struct Generations {
    pub devices: i64,
    pub catalogue: i64,
}

impl Generations {
    pub fn read(conn: &mut DbConnection) -> QueryResult<Generations> {
        fleet_state::table
            .find(1)
            .select((fleet_state::devices_generation, fleet_state::catalogue_generation))
            .first(conn)
    }

    /// Counts a change to devices and returns its number. The row lock it takes
    /// lasts until the transaction ends, so numbers are handed out in commit order.
    pub fn next_device_change(conn: &mut DbConnection) -> QueryResult<i64> {
        diesel::update(fleet_state::table.find(1))
            .set(fleet_state::devices_generation.eq(fleet_state::devices_generation + 1))
            .execute(conn)?;
        Ok(Self::read(conn)?.devices)
    }

    /// Counts a change to what devices may be offered (a patch published or yanked,
    /// an advisory published, revised or withdrawn, entitlements changed).
    pub fn catalogue_changed(conn: &mut DbConnection) -> QueryResult<()> {
        diesel::update(fleet_state::table.find(1))
            .set(fleet_state::catalogue_generation.eq(fleet_state::catalogue_generation + 1))
            .execute(conn)?;
        Ok(())
    }
}
