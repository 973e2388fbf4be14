//! The fleet dashboard's advisories with their adoption history, and the hourly
//! counts the adoption charts draw (and the tallies they are read from).

use chrono::{DateTime, DurationRound, NaiveDateTime, TimeDelta, Utc};

use crate::db::models::exposure::ExposurePoint;
use crate::db::models::{now, AdvisoryRecord, Product};
use crate::domain::{AdvisoryStatus, Scope};
use crate::ids::AdvisoryId;
use crate::services::advisories::KnownProducts;
use crate::services::{ServiceError, Services};

use super::Rules;
use super::{per_customer, stall_after, Counts, CustomerCounts};
use crate::services::fleet::scoped_customer;

/// One advisory on a dashboard: its counts and its adoption chart.
#[derive(Clone, Debug)]
pub struct DashboardEntry {
    pub advisory: AdvisoryRecord,
    pub public_id: String,
    pub emergency: bool,
    pub fix_deadline: Option<DateTime<Utc>>,
    pub counts: Counts,
    /// Per customer, by slug (the vendor's view; one entry for a customer admin).
    pub customers: Vec<CustomerCounts>,
    /// (time, fixed, affected) from publication to now.
    pub history: Vec<(NaiveDateTime, i64, i64)>,
}

/// The published advisories that concern the fleet `scope` sees (narrowed by the
/// vendor to the customer `slug`), emergencies first, then newest first.
pub async fn dashboard(
    services: &Services,
    scope: &Scope,
    slug: Option<String>,
) -> Result<Vec<DashboardEntry>, ServiceError> {
    let stall = stall_after(services)?;
    let scope = scope.clone();
    services
        .db
        .run(move |conn| {
            let customer = scoped_customer(conn, &scope, slug.as_deref())?;
            let catalogue = KnownProducts::load(conn)?;
            let mut entries = Vec::new();
            for record in AdvisoryRecord::list_all(conn)? {
                if record.status != AdvisoryStatus::Published {
                    continue;
                }
                let mut rules = Rules::load(conn, &catalogue, record, stall)?;
                if rules.products.is_empty() {
                    continue;
                }
                let (_, by_customer) = rules.tally(conn, customer.as_ref())?;
                let (counts, customers) = per_customer(conn, &by_customer)?;
                if counts.concerned() == 0 {
                    continue;
                }
                let mut history: Vec<(NaiveDateTime, i64, i64)> = Vec::new();
                for point in ExposurePoint::of_advisory(conn, &rules.record.id, customer.as_ref())? {
                    match history.last_mut() {
                        Some(last) if last.0 == point.recorded_at => {
                            last.1 += point.fixed;
                            last.2 += point.affected;
                        }
                        _ => history.push((point.recorded_at, point.fixed, point.affected)),
                    }
                }
                if let Some(published) = rules.record.first_published_at {
                    if history.first().is_none_or(|first| first.0 > published) {
                        history.insert(0, (published, 0, 0));
                    }
                }
                history.push((now(), counts.fixed, counts.affected));
                entries.push(DashboardEntry {
                    public_id: rules.public_id.clone(),
                    emergency: rules.advisory.emergency,
                    fix_deadline: rules.advisory.fix_deadline,
                    advisory: rules.record,
                    counts,
                    customers,
                    history,
                });
            }
            entries.sort_by(|a, b| {
                b.emergency
                    .cmp(&a.emergency)
                    .then_with(|| b.advisory.first_published_at.cmp(&a.advisory.first_published_at))
            });
            Ok(entries)
        })
        .await
}

/// Records this hour's counts of every published advisory, per customer: the
/// points of the adoption charts. Safe to run twice (the hour's point is replaced).
pub async fn snapshot(services: &Services) -> Result<usize, ServiceError> {
    let stall = stall_after(services)?;
    let every = TimeDelta::from_std(services.config.exposure_point_interval)
        .map_err(|e| ServiceError::internal("exposure_point_interval", e))?;
    services
        .db
        .run(move |conn| {
            let slot = now()
                .duration_trunc(every)
                .map_err(|e| ServiceError::internal("the point's time", e))?;
            let catalogue = KnownProducts::load(conn)?;
            let mut written = 0;
            for record in AdvisoryRecord::list_all(conn)? {
                if record.status != AdvisoryStatus::Published {
                    continue;
                }
                let advisory_id: AdvisoryId = record.id.clone();
                let mut rules = Rules::load(conn, &catalogue, record, stall)?;
                for (customer, counts) in rules.tally(conn, None)?.1 {
                    ExposurePoint::upsert(
                        conn,
                        &ExposurePoint {
                            advisory_id: advisory_id.clone(),
                            customer_id: customer,
                            recorded_at: slot,
                            affected: counts.affected,
                            fixed: counts.fixed,
                            unaffected: counts.unaffected,
                            unknown: counts.unknown,
                        },
                    )?;
                    written += 1;
                }
            }
            Ok(written)
        })
        .await
}

/// Folds the device tallies that exposure counts are summed from; returns how
/// many rows were folded.
pub async fn fold_tallies(services: &Services) -> Result<usize, ServiceError> {
    services
        .db
        .run(|conn| Ok::<_, ServiceError>(crate::db::models::exposure::fold_tallies(conn)?))
        .await
}

/// The products the customer's devices may be enrolled with, for forms.
pub async fn products(services: &Services) -> Result<Vec<Product>, ServiceError> {
    Ok(services.db.query(Product::list).await?)
}
