//! The offer catalogue: what polling devices may be offered, built from the database
//! whenever the catalogue generation moves (a patch published or yanked, an advisory
//! published, revised or withdrawn, entitlements changed) and then read from memory
//! by every poll. Each offer's JSON is rendered once here, not per poll.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::db::models::patch::all_entitlements;
use crate::db::models::rollout::{self, CustomerChoice, RolloutRecord};
use crate::db::models::window::{self, EmergencyPolicy, WindowRecord};
use crate::db::models::{AdvisoryRecord, PatchRecord, Product};
use crate::db::DbConnection;
use crate::domain::advisory::{Affected, Completeness};
use crate::domain::device;
use crate::domain::fleet::Labels;
use crate::domain::fleet::{choose_offer, choose_offer_where, Candidate};
use crate::domain::range::{RangeInput, VersionRange};
use crate::domain::version::{Version, VersionScheme};
use crate::domain::window::{parse_windows, Window, WindowInput};
use crate::domain::{AdvisoryStatus, PatchState, RolloutState};
use crate::ids::{AdvisoryId, CustomerId, PatchId, ProductId, RolloutId};
use crate::secrets::sha256_hex;
use crate::services::advisories::{current_input, KnownProducts};
use crate::services::ServiceError;

/// A published patch as devices are offered it.
#[derive(Debug)]
pub struct Offer {
    pub patch: PatchId,
    /// The offer of the poll answer, without its log entry (added per head).
    pub wire: device::Offer<()>,
    /// Names this offer in `catalogue` tags.
    pub tag: Arc<str>,
}

/// A published advisory's affected versions of one product.
#[derive(Debug)]
pub struct AdvisoryRule {
    pub id: AdvisoryId,
    pub public_id: String,
    pub emergency: bool,
    pub affected: Affected,
    /// The customers (id and slug) a TLP:AMBER or RED advisory is for; `None` for
    /// a TLP:WHITE one, which is for everyone.
    pub readers: Option<Vec<(CustomerId, String)>>,
}

impl AdvisoryRule {
    /// Whether the advisory is for the customer `id`.
    pub fn concerns(&self, id: &CustomerId) -> bool {
        self.readers.as_ref().is_none_or(|r| r.iter().any(|(c, _)| c == id))
    }

    /// Whether the advisory is for the customer with `slug`.
    pub fn concerns_slug(&self, slug: &str) -> bool {
        self.readers.as_ref().is_none_or(|r| r.iter().any(|(_, s)| s == slug))
    }
}

/// What one product's devices may be offered, and the advisories about it.
#[derive(Debug)]
pub struct ProductOffers {
    pub slug: String,
    pub scheme: VersionScheme,
    candidates: Vec<Candidate>,
    offers: Vec<Offer>,
    pub advisories: Vec<AdvisoryRule>,
}

impl ProductOffers {
    /// The offer for a device of this product on `platform` running `running`.
    pub fn offer_for(&self, running: &Version, platform: Option<&str>) -> Option<&Offer> {
        choose_offer(&self.candidates, running, platform).map(|i| &self.offers[i])
    }

    /// Whether `patch` is what a device on `platform` running `running` is offered now.
    pub fn offers(&self, patch: &PatchId, running: &Version, platform: Option<&str>) -> bool {
        self.offer_for(running, platform).is_some_and(|o| o.patch == *patch)
    }

    /// The offer for a device of this product on `platform` running `running`,
    /// among the offers `allowed` lets through.
    pub fn offer_for_where(
        &self,
        running: &Version,
        platform: Option<&str>,
        allowed: impl Fn(&Offer) -> bool,
    ) -> Option<&Offer> {
        choose_offer_where(&self.candidates, running, platform, |i| allowed(&self.offers[i])).map(|i| &self.offers[i])
    }

    /// Whether an emergency advisory for `customer` affects `running`.
    pub fn emergency_affects(&self, running: &Version, customer: &CustomerId) -> bool {
        self.advisories
            .iter()
            .any(|a| a.emergency && a.concerns(customer) && a.affected.matches(running).is_some())
    }
}

/// A patch that is no longer offered, with why.
#[derive(Debug)]
pub struct Withdrawn {
    pub product: ProductId,
    pub reason: String,
}

/// How a rollout holds its patch back: whom it is offered to now.
#[derive(Debug)]
pub struct Gate {
    pub rollout: RolloutId,
    pub state: RolloutState,
    /// The open wave: while running, members of the waves up to it are offered.
    open: Option<u32>,
    /// Each member's wave, by the device's id bytes (only while running or paused).
    members: HashMap<[u8; 16], u32>,
    /// Customers that hold their devices back, and those that take them all in.
    held: HashSet<CustomerId>,
    accelerated: HashSet<CustomerId>,
    /// The devices offered the patch before, as written when the gate was loaded:
    /// they keep it through a pause, a cancellation or a hold, whichever instance
    /// made the offer.
    offered: HashSet<[u8; 16]>,
    /// Names the answers of devices it holds back, for the poll's `catalogue` tag.
    pub tag: Arc<str>,
}

impl Gate {
    /// The wave the device `device` belongs to, if any.
    pub fn wave_of(&self, device: &[u8; 16]) -> Option<u32> {
        self.members.get(device).copied()
    }

    /// Whether the device `device` of `customer` may be offered the patch now;
    /// `offered` says whether it was offered it before (a pause, a cancellation or its
    /// customer's hold stops new offers only), asked only when that decides.
    pub fn admits(&self, device: &[u8; 16], customer: &CustomerId, offered: impl FnOnce() -> bool) -> bool {
        let offered = || self.offered.contains(device) || offered();
        // Most rollouts have no customer choices: the sets are not hashed into then.
        if !self.held.is_empty() && self.held.contains(customer) {
            return offered();
        }
        if self.state == RolloutState::Running && !self.accelerated.is_empty() && self.accelerated.contains(customer) {
            return true;
        }
        match self.state {
            RolloutState::Finished => true,
            RolloutState::Draft => false,
            RolloutState::Paused | RolloutState::Cancelled => offered(),
            RolloutState::Running => {
                self.open
                    .zip(self.members.get(device))
                    .is_some_and(|(open, wave)| *wave <= open)
                    || offered()
            }
        }
    }
}

/// A customer's maintenance windows as polls read them: which windows cover which
/// of its devices, decided when the catalogue loads.
#[derive(Debug, Default)]
pub struct CustomerWindows {
    pub windows: Vec<Window>,
    /// The windows that cover all of its devices.
    wide: Vec<u16>,
    /// The label-scoped windows that cover each device, by the device's id bytes.
    by_device: HashMap<[u8; 16], Vec<u16>>,
}

impl CustomerWindows {
    /// The windows that cover the device `device`.
    pub fn covering(&self, device: &[u8; 16]) -> impl Iterator<Item = (usize, &Window)> {
        self.wide
            .iter()
            .chain(self.by_device.get(device).into_iter().flatten())
            .map(|i| (usize::from(*i), &self.windows[usize::from(*i)]))
    }
}

/// Everything polls are answered from.
#[derive(Debug, Default)]
pub struct OfferCatalogue {
    pub products: HashMap<ProductId, ProductOffers>,
    /// The newest rollout of each patch that has one, by patch.
    pub rollouts: HashMap<PatchId, Gate>,
    pub yanked: HashMap<PatchId, Withdrawn>,
    /// Published patches by id, with their product.
    pub published: HashMap<PatchId, ProductId>,
    entitled: HashSet<(CustomerId, ProductId)>,
    /// Customers' maintenance windows.
    pub windows: HashMap<CustomerId, CustomerWindows>,
    /// Customers whose emergencies ignore their windows.
    pub emergencies_ignore_windows: HashSet<CustomerId>,
}

/// The tag of an answer without an offer.
pub const NO_OFFER_TAG: &str = "none";

impl OfferCatalogue {
    /// Every offer of every product.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> {
        self.products.values().flat_map(|p| p.offers.iter())
    }

    /// The gate of `patch`'s rollout when it holds the device `device` of `customer`
    /// back; `offered` says whether the device was offered it before, asked only
    /// when the patch has a rollout.
    pub fn holding(
        &self,
        patch: &PatchId,
        device: &[u8; 16],
        customer: &CustomerId,
        offered: impl FnOnce() -> bool,
    ) -> Option<&Gate> {
        self.rollouts
            .get(patch)
            .filter(|gate| !gate.admits(device, customer, offered))
    }

    /// Whether `customer` may be offered `product`'s patches.
    pub fn entitled(&self, customer: &CustomerId, product: &ProductId) -> bool {
        self.entitled.contains(&(customer.clone(), product.clone()))
    }

    /// Reads the catalogue; `download_url` makes a patch's download address.
    pub fn load(conn: &mut DbConnection, download_url: &dyn Fn(&PatchId) -> String) -> Result<Self, ServiceError> {
        let products = Product::list(conn)?;
        let validation = KnownProducts::load(conn)?;
        let mut rules: HashMap<String, Vec<AdvisoryRule>> = HashMap::new();
        let mut emergency: HashMap<String, bool> = HashMap::new();
        for record in AdvisoryRecord::list_all(conn)? {
            if record.status != AdvisoryStatus::Published {
                continue;
            }
            let Some(public_id) = record.public_id.clone() else {
                continue;
            };
            let advisory = validation.validate(&current_input(&record)?, Completeness::Publish)?;
            emergency.insert(public_id.clone(), advisory.emergency);
            let readers = if record.tlp.restricted() {
                Some(AdvisoryRecord::readers_named(conn, &record.id)?)
            } else {
                None
            };
            for affected in advisory.affected {
                rules
                    .entry(affected.product.slug.clone())
                    .or_default()
                    .push(AdvisoryRule {
                        id: record.id.clone(),
                        public_id: public_id.clone(),
                        emergency: advisory.emergency,
                        affected,
                        readers: readers.clone(),
                    });
            }
        }
        let mut catalogue = OfferCatalogue {
            entitled: all_entitlements(conn)?.into_iter().collect(),
            rollouts: gates(conn)?,
            windows: windows(conn)?,
            emergencies_ignore_windows: EmergencyPolicy::ignoring_windows(conn)?.into_iter().collect(),
            ..OfferCatalogue::default()
        };
        for product in &products {
            catalogue.products.insert(
                product.id.clone(),
                ProductOffers {
                    slug: product.slug.clone(),
                    scheme: product.scheme(),
                    candidates: Vec::new(),
                    offers: Vec::new(),
                    advisories: rules.remove(&product.slug).unwrap_or_default(),
                },
            );
        }
        for view in PatchRecord::list(conn, None)? {
            let patch = &view.patch;
            match patch.state {
                PatchState::Draft => continue,
                PatchState::Yanked => {
                    catalogue.yanked.insert(
                        patch.id.clone(),
                        Withdrawn {
                            product: patch.product_id.clone(),
                            reason: patch.yank_reason.clone().unwrap_or_else(|| "no reason given".into()),
                        },
                    );
                    continue;
                }
                PatchState::Published => {}
            }
            let Some(offers) = catalogue.products.get_mut(&patch.product_id) else {
                continue;
            };
            let broken = |what: &str| ServiceError::internal(format!("published patch {}", patch.id), what);
            let version = offers.scheme.parse(&patch.version).map_err(|e| broken(&e))?;
            let ranges: Vec<RangeInput> =
                serde_json::from_str(&patch.applies_to).map_err(|e| broken(&e.to_string()))?;
            let applies_to = ranges
                .iter()
                .map(|r| VersionRange::parse(offers.scheme, r).map_err(|(_, e)| broken(&e)))
                .collect::<Result<Vec<_>, _>>()?;
            let (Some(sha256), Some(size), Some(signature)) = (&patch.sha256, patch.size, &patch.signature) else {
                return Err(broken("has no file or signature"));
            };
            let is_emergency = view.fixes.iter().any(|id| emergency.get(id).copied().unwrap_or(false));
            let wire = device::Offer {
                patch_id: patch.id.to_string(),
                version: patch.version.clone(),
                platform: patch.platform.clone(),
                filename: patch.filename.clone(),
                download_url: download_url(&patch.id),
                sha256: sha256.clone(),
                size: size as u64,
                signature: signature.clone(),
                advisories: view.fixes.clone(),
                emergency: is_emergency,
                rollback: patch.rollback,
                log: None,
                rollout: None,
                install_after: None,
                install: device::Install::Now,
            };
            let json = serde_json::to_string(&wire).map_err(|e| broken(&e.to_string()))?;
            let tag = sha256_hex(json.as_bytes())[..16].to_owned();
            offers.candidates.push(Candidate {
                version,
                platform: patch.platform.clone(),
                applies_to,
                emergency: is_emergency,
                rollback: patch.rollback,
            });
            offers.offers.push(Offer {
                patch: patch.id.clone(),
                wire,
                tag: tag.into(),
            });
            catalogue.published.insert(patch.id.clone(), patch.product_id.clone());
        }
        Ok(catalogue)
    }
}

/// Every customer's windows, with the devices each label-scoped one covers.
fn windows(conn: &mut DbConnection) -> Result<HashMap<CustomerId, CustomerWindows>, ServiceError> {
    let mut inputs: HashMap<CustomerId, Vec<WindowInput>> = HashMap::new();
    for record in WindowRecord::all(conn)? {
        let input = serde_json::from_str(&record.spec).map_err(|e| ServiceError::internal("a stored window", e))?;
        inputs.entry(record.customer_id).or_default().push(input);
    }
    let mut windows = HashMap::with_capacity(inputs.len());
    for (customer, inputs) in inputs {
        let parsed = parse_windows(&inputs)
            .map_err(|(field, message)| ServiceError::internal("a stored window", format!("{field}: {message}")))?;
        let wide = (0..parsed.len())
            .filter(|i| !parsed[*i].by_label())
            .filter_map(|i| u16::try_from(i).ok())
            .collect();
        windows.insert(
            customer,
            CustomerWindows {
                windows: parsed,
                wide,
                by_device: HashMap::new(),
            },
        );
    }
    let labelled: Vec<CustomerId> = windows
        .iter()
        .filter(|(_, w)| w.windows.iter().any(Window::by_label))
        .map(|(c, _)| c.clone())
        .collect();
    if labelled.is_empty() {
        return Ok(windows);
    }
    for (device, (customer, pairs)) in window::labels_of_customers(conn, &labelled)? {
        let (Some(bytes), Some(own)) = (device.to_bytes(), windows.get_mut(&customer)) else {
            continue;
        };
        let Ok(labels) = Labels::parse(pairs.into_iter().collect()) else {
            continue;
        };
        let covering: Vec<u16> = own
            .windows
            .iter()
            .enumerate()
            .filter(|(_, w)| w.by_label() && w.covers(&labels))
            .filter_map(|(i, _)| u16::try_from(i).ok())
            .collect();
        if !covering.is_empty() {
            own.by_device.insert(bytes, covering);
        }
    }
    Ok(windows)
}

/// The newest rollout of each patch, with the members of those running or paused.
fn gates(conn: &mut DbConnection) -> Result<HashMap<PatchId, Gate>, ServiceError> {
    let mut newest: HashMap<PatchId, RolloutRecord> = HashMap::new();
    for record in RolloutRecord::all(conn)? {
        newest.insert(record.patch_id.clone(), record);
    }
    let mut gates = HashMap::with_capacity(newest.len());
    for (patch, record) in newest {
        let (mut held, mut accelerated) = (HashSet::new(), HashSet::new());
        for choice in CustomerChoice::of(conn, &record.id)? {
            if choice.hold {
                held.insert(choice.customer_id);
            } else if choice.accelerate {
                accelerated.insert(choice.customer_id);
            }
        }
        let offered = if record.state == RolloutState::Finished {
            HashSet::new()
        } else {
            rollout::offered(conn, &patch)?
                .into_iter()
                .filter_map(|device| device.to_bytes())
                .collect()
        };
        let members = if matches!(record.state, RolloutState::Running | RolloutState::Paused) {
            rollout::members(conn, &record.id)?
                .into_iter()
                .filter_map(|(device, wave)| Some((device.to_bytes()?, u32::try_from(wave).ok()?)))
                .collect()
        } else {
            HashMap::new()
        };
        gates.insert(
            patch,
            Gate {
                tag: format!("held:{}:{}", record.id, record.state).into(),
                rollout: record.id,
                state: record.state,
                open: record.current_wave.and_then(|w| u32::try_from(w).ok()),
                members,
                held,
                accelerated,
                offered,
            },
        );
    }
    Ok(gates)
}
