//! The `update` objects of poll answers — an offer with its patch's log entry and
//! inclusion in the newest head — and the `held` objects of answers a rollout holds
//! back, rendered once per catalogue and head, so a poll copies them instead of
//! serialising them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::value::RawValue;

use chrono::{DateTime, Utc};

use crate::domain::device::{Held, OfferRollout};
use crate::ids::PatchId;
use crate::services::log::LogView;

use super::catalogue::{Offer, OfferCatalogue};

/// The rendered updates of one catalogue and one log view (held, so that neither
/// can be mistaken for a later one at the same address).
#[derive(Default)]
struct Rendered {
    catalogue: Option<Arc<OfferCatalogue>>,
    log: Option<Arc<LogView>>,
    by_patch: HashMap<PatchId, Arc<RawValue>>,
    /// Why each patch a rollout holds back is held, where the head has the
    /// rollout's state as the catalogue knows it.
    held: HashMap<PatchId, Arc<RawValue>>,
}

impl Rendered {
    fn of(&self, catalogue: &Arc<OfferCatalogue>, log: &Arc<LogView>) -> bool {
        self.catalogue.as_ref().is_some_and(|c| Arc::ptr_eq(c, catalogue))
            && self.log.as_ref().is_some_and(|l| Arc::ptr_eq(l, log))
    }
}

/// This instance's rendered updates.
#[derive(Default)]
pub struct Updates {
    rendered: RwLock<Arc<Rendered>>,
}

impl Updates {
    /// The update object offering `offer` under `log`'s head; `None` when the head
    /// does not include the patch (it is offered once a head does).
    pub fn update(&self, catalogue: &Arc<OfferCatalogue>, log: &Arc<LogView>, offer: &Offer) -> Option<Arc<RawValue>> {
        self.current(catalogue, log).by_patch.get(&offer.patch).cloned()
    }

    /// The `held` object of an answer whose update the rollout of `patch` holds back.
    pub fn held(&self, catalogue: &Arc<OfferCatalogue>, log: &Arc<LogView>, patch: &PatchId) -> Option<Arc<RawValue>> {
        self.current(catalogue, log).held.get(patch).cloned()
    }

    fn current(&self, catalogue: &Arc<OfferCatalogue>, log: &Arc<LogView>) -> Arc<Rendered> {
        let current = self.rendered.read().unwrap_or_else(|e| e.into_inner()).clone();
        if current.of(catalogue, log) {
            current
        } else {
            self.render(catalogue, log)
        }
    }

    /// Renders every offer of `catalogue` that `log`'s head includes, once however
    /// many polls ask at the same moment.
    fn render(&self, catalogue: &Arc<OfferCatalogue>, log: &Arc<LogView>) -> Arc<Rendered> {
        let mut slot = self.rendered.write().unwrap_or_else(|e| e.into_inner());
        if slot.of(catalogue, log) {
            return slot.clone();
        }
        let by_patch = catalogue
            .offers()
            .filter_map(|offer| {
                let entry = log.offers.get(&offer.patch)?;
                let update = offer.wire.with_log(&**entry);
                // An offer is strings and numbers: it always renders.
                let raw = serde_json::value::to_raw_value(&update).ok()?;
                Some((offer.patch.clone(), Arc::from(raw)))
            })
            .collect();
        let held = catalogue
            .rollouts
            .iter()
            .filter_map(|(patch, gate)| {
                let (state, entry) = log.rollouts.get(&gate.rollout)?;
                if *state != gate.state {
                    return None;
                }
                let held = Held {
                    rollout: gate.rollout.to_string(),
                    patch_id: patch.to_string(),
                    state: gate.state,
                    log: entry.clone(),
                };
                let raw = serde_json::value::to_raw_value(&held).ok()?;
                Some((patch.clone(), Arc::from(raw)))
            })
            .collect();
        let rendered = Arc::new(Rendered {
            catalogue: Some(catalogue.clone()),
            log: Some(log.clone()),
            by_patch,
            held,
        });
        *slot = rendered.clone();
        rendered
    }
}

/// The end every rendered update has: `install` is the offer's last field.
const INSTALL_NOW: &str = r#""install":"now"}"#;

/// `update` as one device gets it: with the rollout it is offered in, and, when its
/// maintenance window is shut, deferred to `after`. The rendered update is copied
/// once and its end rewritten; without either it is shared as it is.
pub fn personal(update: &Arc<RawValue>, rollout: Option<&OfferRollout>, after: Option<DateTime<Utc>>) -> Arc<RawValue> {
    let text = update.get();
    let (Some(head), true) = (text.strip_suffix(INSTALL_NOW), rollout.is_some() || after.is_some()) else {
        return update.clone();
    };
    let mut out = String::with_capacity(text.len() + 192);
    out.push_str(head);
    if let Some(rollout) = rollout.and_then(|r| serde_json::to_string(r).ok()) {
        out.push_str("\"rollout\":");
        out.push_str(&rollout);
        out.push(',');
    }
    match after.and_then(|t| serde_json::to_string(&t).ok()) {
        Some(after) => {
            out.push_str("\"install_after\":");
            out.push_str(&after);
            out.push_str(",\"install\":\"deferred\"}");
        }
        None => out.push_str(INSTALL_NOW),
    }
    RawValue::from_string(out).map_or_else(|_| update.clone(), Arc::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::device::{Install, Offer};
    use crate::domain::RolloutState;

    fn offer() -> Offer<u32> {
        Offer {
            patch_id: "p".into(),
            version: "6.3.0r22".into(),
            platform: None,
            filename: "f.bin".into(),
            download_url: "http://127.0.0.1/f".into(),
            sha256: "00".into(),
            size: 3,
            signature: "sig".into(),
            advisories: vec!["PSA-1".into()],
            emergency: true,
            rollback: false,
            log: Some(7),
            rollout: None,
            install_after: None,
            install: Install::Now,
        }
    }

    #[test]
    fn a_personal_update_is_the_shared_one_with_its_rollout_and_install_time() {
        let shared: Arc<RawValue> = Arc::from(serde_json::value::to_raw_value(&offer()).unwrap());
        assert!(shared.get().ends_with(INSTALL_NOW), "{}", shared.get());
        assert!(Arc::ptr_eq(&personal(&shared, None, None), &shared));
        let rollout = OfferRollout {
            id: "r".into(),
            wave: Some(2),
            state: RolloutState::Running,
        };
        let after: DateTime<Utc> = "2026-12-08T01:00:00Z".parse().unwrap();
        let read: Offer<u32> = serde_json::from_str(personal(&shared, Some(&rollout), Some(after)).get()).unwrap();
        let mut expected = offer();
        expected.rollout = Some(rollout.clone());
        expected.install_after = Some(after);
        expected.install = Install::Deferred;
        assert_eq!(read, expected);
        let now: Offer<u32> = serde_json::from_str(personal(&shared, Some(&rollout), None).get()).unwrap();
        assert_eq!(now.install, Install::Now);
        assert_eq!(now.rollout, Some(rollout));
    }
}
