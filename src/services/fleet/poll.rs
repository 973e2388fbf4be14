//! The device protocol: the poll (answered from memory: the device from the token
//! cache, the offer from the catalogue; what the device runs is queued, not
//! written), install reports, and which patches a device may download — exactly
//! those it is offered.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;

use crate::db::models::window::release_places;
use crate::db::models::{now, DeviceRecord, Offers, ReportRecord};
use crate::domain::event::{Actor, Event};
use crate::domain::patch::{Platform, Sha256};
use crate::domain::{text, ObservationSource, ReportState};
use crate::ids::PatchId;
use crate::services::log;
use crate::services::patches::{self, Downloadable, PatchReader};
use crate::services::refusals::Refusal;
use crate::services::{ServiceError, Services};

use super::cache::DeviceEntry;
use super::catalogue::NO_OFFER_TAG;
use super::installs::{self, Timing};
use super::updates::personal;
use crate::domain::device::OfferRollout;
use crate::domain::fleet::HeadReport;
use crate::domain::RolloutState;

pub use crate::domain::device::{Poll as PollRequest, Report as ReportRequest};

/// The tag of an answer held back by a rollout whose state no signed head covers yet.
const UNLOGGED_HOLD_TAG: &str = "held:unlogged";

/// The answer to a poll, its parts rendered once per offer and head.
#[derive(Clone, Debug)]
pub struct PollAnswer {
    /// The update object (the offer with its log entry); `None` when there is
    /// nothing to install.
    pub update: Option<Arc<RawValue>>,
    pub tag: Arc<str>,
    /// The device already holds this answer (it sent its tag).
    pub unchanged: bool,
    pub poll_interval_s: u64,
    /// The newest signed tree head.
    pub log_head: Option<Arc<RawValue>>,
    /// The witnesses' cosignature lines of its checkpoint, as a JSON list.
    pub log_cosignatures: Option<Arc<RawValue>>,
    /// The consistency proof from the size the device holds to `log_head`.
    pub log_consistency: Option<Arc<RawValue>>,
    /// With an offer: the patches yanked within `log_head`'s tree, which the head's
    /// signature commits to.
    pub revoked: Option<Arc<RawValue>>,
    /// Why the update the device would be offered is held back by a rollout.
    pub held: Option<Arc<RawValue>>,
}

impl PollAnswer {
    /// The answer as the device protocol's [`PollResponse`](crate::domain::device::PollResponse).
    pub fn response(
        &self,
    ) -> crate::domain::device::PollResponse<&RawValue, &RawValue, &RawValue, &RawValue, &RawValue, &RawValue> {
        crate::domain::device::PollResponse {
            update: (!self.unchanged).then_some(self.update.as_deref()),
            unchanged: self.unchanged,
            catalogue: self.tag.to_string(),
            poll_interval_s: self.poll_interval_s,
            log_head: self.log_head.as_deref(),
            log_cosignatures: self.log_cosignatures.as_deref(),
            log_consistency: self.log_consistency.as_deref(),
            revoked: self.revoked.as_deref().filter(|_| !self.unchanged),
            held: self.held.as_deref().filter(|_| !self.unchanged),
        }
    }
}

/// Answers a poll of `device` from memory, and queues what it runs and what it was
/// offered for the next flush. Only a device inside a window that caps installs at
/// once may reach the database, for its place (see `installs`).
pub async fn poll(
    services: &Services,
    device: &DeviceEntry,
    request: &PollRequest,
) -> Result<PollAnswer, ServiceError> {
    spend(services, device)?;
    let catalogue = services.fleet.catalogue();
    let product = catalogue
        .products
        .get(&*device.product)
        .ok_or_else(|| ServiceError::Unavailable("the offer catalogue is not loaded yet".into()))?;
    let version = product
        .scheme
        .parse(request.version.trim())
        .map_err(|e| ServiceError::invalid("version", format!("not a {} version: {e}", product.scheme)))?;
    let image = request
        .image_sha256
        .as_deref()
        .map(|h| {
            h.parse::<Sha256>()
                .map_err(|e| ServiceError::invalid("image_sha256", e))
        })
        .transpose()?;
    let platform = match (&device.platform, &request.platform) {
        (Some(enrolled), Some(said)) if !enrolled.eq_ignore_ascii_case(said) => {
            return Err(ServiceError::invalid(
                "platform",
                format!("this device is enrolled as platform `{enrolled}`, not `{said}`"),
            ))
        }
        (Some(enrolled), _) => Some(&**enrolled),
        (None, Some(said)) => {
            said.parse::<Platform>()
                .map_err(|e| ServiceError::invalid("platform", e))?;
            Some(said.as_str())
        }
        (None, None) => None,
    };
    let log = services.log.view();
    // Only what the log's newest head includes is offered: a patch published a
    // moment ago is offered once its head is signed (within the same request).
    // A patch a rollout holds back is left out: the device gets the best of the
    // rest, and is told which rollout holds it back and in what state.
    let mut held = None;
    let offered = if catalogue.entitled(&device.customer, &device.product) {
        let holding = |offer: &super::catalogue::Offer| {
            catalogue.holding(&offer.patch, &device.uuid(), &device.customer, || {
                services.fleet.was_offered(device, &offer.patch)
            })
        };
        let chosen = match product.offer_for(&version, platform) {
            Some(best) => match holding(best) {
                Some(gate) => {
                    held = Some((best, gate));
                    // The rest, without asking about the held one again.
                    product.offer_for_where(&version, platform, |o| !std::ptr::eq(o, best) && holding(o).is_none())
                }
                None => Some(best),
            },
            None => None,
        };
        chosen.and_then(|o| Some((o, services.fleet.updates.update(&catalogue, &log, o)?)))
    } else {
        None
    };
    let offer = offered.as_ref().map(|(o, _)| *o);
    let base = if product.emergency_affects(&version, &device.customer) {
        services.config.emergency_poll_interval
    } else {
        services.config.poll_interval
    };
    let at = now();
    services.fleet.queue.observe(
        device.uuid(),
        version.as_str(),
        image.as_ref(),
        ObservationSource::Poll,
        at,
    );
    if let Some(offer) = offer {
        if services.fleet.offer(device, &offer.patch) {
            services.fleet.queue.offered(device.uuid(), &offer.patch, at);
        }
    }
    // Written only while a device says it is stale, and once when it stops saying
    // so: the common, fresh poll costs nothing here.
    if let Some(stale) = request.stale {
        if services.fleet.swap_stale(device, stale) || stale {
            let report = HeadReport {
                stale,
                head_age_s: request.head_age_s,
                at,
            };
            services.fleet.queue.head_report(&device.id(), report);
        }
    }
    let held_claim = held
        .as_ref()
        .and_then(|(best, _)| services.fleet.updates.held(&catalogue, &log, &best.patch));
    let interval = Duration::from_secs(jittered(base.as_secs()));
    // What this device alone is told about its offer: the rollout it is offered
    // the patch in, and whether its maintenance window defers the install.
    let whose = (&*device.customer, device.uuid());
    let timing = match offer.map(|o| installs::timing(&catalogue, whose, o, interval, at.and_utc())) {
        Some(Timing::Capped { open }) => Some(installs::place(services, whose, open, interval, at.and_utc()).await),
        other => other,
    };
    let deferred = match &timing {
        Some(Timing::Deferred { after, wait }) => Some((*after, *wait)),
        _ => None,
    };
    let gate = offer.and_then(|o| catalogue.rollouts.get(&o.patch));
    let rollout = gate
        .filter(|gate| gate.state != RolloutState::Finished)
        .map(|gate| OfferRollout {
            id: gate.rollout.to_string(),
            wave: gate.wave_of(&device.uuid()),
            state: gate.state,
        });
    let tag: Arc<str> = match (offer, &held) {
        (Some(offer), _) if rollout.is_some() || deferred.is_some() => {
            let gate = gate.map_or_else(String::new, |gate| format!(":{}", gate.tag));
            let after = deferred.map_or_else(String::new, |(after, _)| format!(":after:{}", after.timestamp()));
            format!("{}{gate}{after}", offer.tag).into()
        }
        (Some(offer), _) => offer.tag.clone(),
        // Said once a signed head covers the rollout's state: until then the answer
        // is tagged apart, so that the device takes the claim when it comes.
        (None, Some((_, gate))) if held_claim.is_some() => gate.tag.clone(),
        (None, Some(_)) => Arc::from(UNLOGGED_HOLD_TAG),
        (None, None) => Arc::from(NO_OFFER_TAG),
    };
    let log_consistency = request
        .log_size
        .and_then(|size| log.consistency_from(&services.db, size));
    Ok(PollAnswer {
        unchanged: request.catalogue.as_deref() == Some(&*tag),
        update: offered.map(|(_, update)| personal(&update, rollout.as_ref(), deferred.map(|(after, _)| after))),
        tag,
        poll_interval_s: deferred.map_or(interval, |(_, wait)| wait).as_secs().max(1),
        log_head: log.head.clone(),
        log_cosignatures: log.cosignatures.clone(),
        log_consistency,
        revoked: offer.and(log.revoked.clone()),
        held: held_claim,
    })
}

/// Spends one of `device`'s requests this minute, from memory; 429 past its budget.
fn spend(services: &Services, device: &DeviceEntry) -> Result<(), ServiceError> {
    services
        .fleet
        .spend(device, &services.device_rate)
        .map_err(|wait| services.refusals.rate_limited(Refusal::DeviceRate, wait))
}

/// `seconds` shortened at random by up to 20 %, so that a fleet that started
/// together does not keep polling together, while every device still asks again
/// within the configured interval: a fix published now reaches the whole fleet
/// within one interval.
fn jittered(seconds: u64) -> u64 {
    let spread = seconds / 5;
    if seconds < 10 {
        return seconds.max(1);
    }
    (seconds - crate::random::fast_u64() % (spread + 1)).max(1)
}

/// Refuses a patch the device may not act on: yanked (409 with the reason) or
/// never offered to it (409). A patch counts as offered when an instance recorded
/// the offer, or when it is what the device's running version is offered now (a
/// report that reaches another instance before the offer was written).
async fn check_offered(services: &Services, device: &DeviceEntry, patch: &PatchId) -> Result<(), ServiceError> {
    let catalogue = services.fleet.catalogue();
    if let Some(yanked) = catalogue.yanked.get(patch) {
        if yanked.product == *device.product {
            return Err(ServiceError::Conflict(format!(
                "patch {patch} was yanked: {}",
                yanked.reason
            )));
        }
    }
    let never = || ServiceError::Conflict(format!("patch {patch} was never offered to this device"));
    if catalogue.published.get(patch) != Some(&*device.product) {
        return Err(never());
    }
    if services.fleet.was_offered(device, patch) {
        return Ok(());
    }
    let (id, wanted) = (device.id(), patch.clone());
    let (recorded, running) = services
        .db
        .run(move |conn| {
            let recorded = Offers::was_offered(conn, &id, &wanted)?;
            let running = DeviceRecord::find(conn, &id)?.and_then(|d| d.version);
            Ok::<_, ServiceError>((recorded, running))
        })
        .await?;
    if recorded {
        return Ok(());
    }
    let held_back = catalogue
        .holding(patch, &device.uuid(), &device.customer, || false)
        .is_some();
    let offered_now = !held_back
        && catalogue.products.get(&*device.product).is_some_and(|product| {
            running
                .and_then(|v| product.scheme.parse(&v).ok())
                .is_some_and(|v| product.offers(patch, &v, device.platform.as_deref()))
        });
    if offered_now {
        Ok(())
    } else {
        Err(never())
    }
}

/// Records an install step of `device` for a patch it was offered.
pub async fn report(
    services: &Services,
    device: &DeviceEntry,
    request: ReportRequest,
) -> Result<ReportRecord, ServiceError> {
    spend(services, device)?;
    let patch: PatchId = request
        .patch_id
        .parse()
        .map_err(|_| ServiceError::invalid("patch_id", format!("`{}` is not a patch id", request.patch_id)))?;
    let message = request
        .message
        .as_deref()
        .map(|m| text::SUMMARY.check("message", m, false))
        .transpose()?
        .filter(|m| !m.is_empty());
    if request.state == ReportState::Failed && message.is_none() {
        return Err(ServiceError::invalid(
            "message",
            "a failed install needs a message saying why",
        ));
    }
    let catalogue = services.fleet.catalogue();
    let scheme = catalogue
        .products
        .get(&*device.product)
        .map(|p| p.scheme)
        .ok_or_else(|| ServiceError::Unavailable("the offer catalogue is not loaded yet".into()))?;
    let version = request
        .version
        .as_deref()
        .map(|v| {
            scheme
                .parse(v.trim())
                .map_err(|e| ServiceError::invalid("version", format!("not a {scheme} version: {e}")))
        })
        .transpose()?;
    check_offered(services, device, &patch).await?;
    let at = now();
    let (id, state, customer) = (device.id(), request.state, (*device.customer).clone());
    let stored_version = version.as_ref().map(ToString::to_string);
    let record = services
        .db
        .write(move |conn| {
            // The device's row first: its lock orders a device's concurrent
            // reports, so a repeated step is counted on the latest, not raced.
            DeviceRecord::set_report(conn, &id, &patch, state, at)?;
            let (report, new) = ReportRecord::insert(
                conn,
                &id,
                &patch,
                state,
                stored_version.as_deref(),
                message.as_deref(),
                at,
            )?;
            // The log records how an install ended, once, not each step on the
            // way: a device cannot grow the public log by reporting progress or
            // repeating an end.
            if !state.in_progress() {
                // Its place in a capped window goes to the next device.
                release_places(conn, &id)?;
                if new {
                    let event = Event::InstallReported {
                        customer: customer.clone(),
                        device: id.clone(),
                        patch: patch.clone(),
                        state,
                        version: stored_version.clone(),
                    };
                    log::append(conn, &event, &Actor::Device(id.clone()))?;
                }
            }
            Ok::<_, ServiceError>(ReportRecord::find(conn, &report)?)
        })
        .await?;
    if let Some(version) = &version {
        services
            .fleet
            .queue
            .observe(device.uuid(), version.as_str(), None, ObservationSource::Report, at);
    }
    if !state.in_progress() {
        services.fleet.installs.release(&device.uuid());
    }
    tracing::info!(device.id = %device.id(), patch.id = %record.patch_id, state = %record.state, "install report");
    Ok(record)
}

/// The patch `id` if `device` may download it: one it is offered.
pub async fn downloadable(services: &Services, device: &DeviceEntry, id: String) -> Result<Downloadable, ServiceError> {
    let patch: PatchId = id.parse().map_err(|_| ServiceError::NotFound("patch"))?;
    if services.fleet.catalogue().yanked.contains_key(&patch) {
        // The usual 410 with the reason, for a patch the device's customer may see.
        return patches::downloadable(services, PatchReader::Customer((*device.customer).clone()), id).await;
    }
    check_offered(services, device, &patch).await.map_err(|err| match err {
        ServiceError::Conflict(_) => ServiceError::NotFound("patch"),
        other => other,
    })?;
    patches::downloadable(services, PatchReader::Customer((*device.customer).clone()), id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_shortens_by_at_most_a_fifth_and_spreads() {
        let seen: std::collections::HashSet<u64> = (0..1000).map(|_| jittered(1800)).collect();
        assert!(seen.iter().all(|s| (1440..=1800).contains(s)), "{seen:?}");
        assert!(seen.len() > 100, "only {} distinct intervals", seen.len());
        assert_eq!(jittered(9), 9);
    }
}
