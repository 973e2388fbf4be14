//! A customer's CSAF VEX of one published advisory: the versions its devices run,
//! each placed by the advisory's rules, with the fix to install.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::db::models::{now, Customer, PatchRecord, RevisionRecord};
use crate::domain::advisory::{rfc3339, RevisionEntry};
use crate::domain::csaf::vex::{self, Fix, FleetVersion, VexInput};
use crate::domain::csaf::{directory, document_path};
use crate::domain::{Caller, PatchState};
use crate::ids::CustomerId;
use crate::services::advisories::KnownProducts;
use crate::services::{ServiceError, Services};

use super::{published, stall_after, Rules};

/// The VEX of the published advisory `key` for the fleet of the caller's customer,
/// as its devices stand now.
pub async fn vex(services: &Services, caller: &Caller, key: String) -> Result<Value, ServiceError> {
    let customer: CustomerId = caller
        .scope
        .customer()
        .cloned()
        .ok_or_else(|| ServiceError::Forbidden("a VEX is made for a customer's admins".into()))?;
    let stall = stall_after(services)?;
    let publisher = services.publish.publisher.clone();
    let base = services.config.url("");
    services
        .db
        .run(move |conn| {
            let record = published(conn, &key)?;
            let catalogue = KnownProducts::load(conn)?;
            let mut rules = Rules::load(conn, &catalogue, record, stall)?;
            if !rules.concerns(&customer) {
                return Err(ServiceError::NotFound("advisory"));
            }
            let customer_row = Customer::find(conn, &customer)?.ok_or(ServiceError::NotFound("customer"))?;
            let (groups, _) = rules.tally(conn, Some(&customer))?;
            // Devices per (product, version), whatever their latest report.
            let mut running: BTreeMap<(String, String), i64> = BTreeMap::new();
            let mut unknown_devices = 0;
            for group in &groups {
                let Some((_, affected)) = rules.products.get(&group.product_id) else {
                    continue;
                };
                match &group.version {
                    Some(version) => {
                        *running
                            .entry((affected.product.slug.clone(), version.clone()))
                            .or_default() += group.count
                    }
                    None => unknown_devices += group.count,
                }
            }
            let fleet: Vec<FleetVersion> = running
                .into_iter()
                .map(|((product, version), devices)| {
                    let parsed = catalogue.info(&product).and_then(|p| p.scheme.parse(&version).ok());
                    FleetVersion {
                        product,
                        version,
                        parsed,
                        devices,
                    }
                })
                .collect();
            let fixes: Vec<Fix> = PatchRecord::fixing(conn, &rules.record.id)?
                .into_iter()
                .filter(|p| p.state == PatchState::Published)
                .filter_map(|p| {
                    let (_, affected) = rules.products.get(&p.product_id)?;
                    Some(Fix {
                        product: affected.product.slug.clone(),
                        url: format!("{base}/api/v1/patches/{}/download", p.id),
                        patch_id: p.id.to_string(),
                        version: p.version,
                    })
                })
                .collect();
            let revisions: Vec<RevisionEntry> = RevisionRecord::list(conn, &rules.record.id)?
                .into_iter()
                .map(|r| RevisionEntry {
                    revision: r.revision,
                    date: rfc3339(r.published_at.and_utc()),
                    summary: r.change_summary,
                })
                .collect();
            let first_published = rules
                .record
                .first_published_at
                .map(|t| t.and_utc())
                .ok_or(ServiceError::NotFound("advisory"))?;
            use chrono::Datelike;
            let advisory_url = format!(
                "{base}/{}/{}",
                directory(rules.record.tlp),
                document_path(&rules.public_id, first_published.year())
            );
            let self_url = format!("{base}/api/v1/advisories/{}/vex", rules.public_id);
            Ok(vex::document(&VexInput {
                advisory: &rules.advisory,
                public_id: &rules.public_id,
                revisions: &revisions,
                first_published,
                advisory_url: &advisory_url,
                self_url: &self_url,
                publisher: &publisher,
                customer_name: &customer_row.name,
                customer_slug: &customer_row.slug,
                fleet: &fleet,
                unknown_devices,
                fixes: &fixes,
                now: now().and_utc(),
            }))
        })
        .await
}
