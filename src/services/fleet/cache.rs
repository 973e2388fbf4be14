//! This instance's copy of the fleet: devices by token (for authenticating polls
//! without the database) and the offer catalogue. [`Fleet::sync`] keeps it in step:
//! it reads the two change counters and loads what moved — the devices changed
//! since the last generation seen, or the whole catalogue. Services that change
//! either on this instance sync right after their commit; the sync job catches
//! changes made by other instances a few times a second.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::db::models::device::DeviceKey;
use crate::db::models::{DeviceRecord, Generations};
use crate::ids::{CustomerId, DeviceId, PatchId, ProductId};
use crate::secrets::PresentedToken;
use crate::services::{ServiceError, Services};

use super::catalogue::OfferCatalogue;
use super::observations::ObservationQueue;
use super::updates::Updates;
use crate::services::budget::Budget;

/// Devices loaded per query when the copy catches up.
const SYNC_PAGE: i64 = 5_000;

/// Prefix of device tokens: `pwd_<lookup>_<secret>`.
pub const DEVICE_TOKEN_PREFIX: &str = "pwd";

/// A live device as polls see it. Kept small, as there is one per device: the
/// customer, product and platform are shared between the devices that have them,
/// and the token's digest is held as bytes.
#[derive(Debug)]
pub struct DeviceEntry {
    pub id: DeviceId,
    pub name: Box<str>,
    pub customer: Arc<CustomerId>,
    pub product: Arc<ProductId>,
    pub platform: Option<Arc<str>>,
    /// Whether the device last said it is stale: a poll that says otherwise ends it.
    pub stale: std::sync::atomic::AtomicBool,
    /// What the device may still ask this minute.
    pub budget: Budget,
    secret_digest: [u8; 32],
}

/// Shares the values many devices have in common.
#[derive(Default)]
struct Interner {
    customers: HashMap<CustomerId, Arc<CustomerId>>,
    products: HashMap<ProductId, Arc<ProductId>>,
    platforms: HashMap<String, Arc<str>>,
}

impl Interner {
    fn entry(&mut self, record: &DeviceKey) -> Option<DeviceEntry> {
        let mut secret_digest = [0u8; 32];
        hex::decode_to_slice(&record.token_hash, &mut secret_digest).ok()?;
        Some(DeviceEntry {
            id: record.id.clone(),
            name: record.name.as_str().into(),
            customer: self
                .customers
                .entry(record.customer_id.clone())
                .or_insert_with(|| Arc::new(record.customer_id.clone()))
                .clone(),
            product: self
                .products
                .entry(record.product_id.clone())
                .or_insert_with(|| Arc::new(record.product_id.clone()))
                .clone(),
            platform: record.platform.as_ref().map(|p| {
                self.platforms
                    .entry(p.clone())
                    .or_insert_with(|| Arc::from(p.as_str()))
                    .clone()
            }),
            stale: record.stale_since.is_some().into(),
            budget: Budget::default(),
            secret_digest,
        })
    }
}

/// The map key of a token's lookup part (24 hex digits).
fn lookup_key(lookup: &str) -> Option<[u8; 12]> {
    let mut key = [0u8; 12];
    hex::decode_to_slice(lookup, &mut key).ok()?;
    Some(key)
}

/// The in-memory fleet of this instance.
pub struct Fleet {
    devices: RwLock<HashMap<[u8; 12], Arc<DeviceEntry>>>,
    interner: std::sync::Mutex<Interner>,
    catalogue: RwLock<Arc<OfferCatalogue>>,
    seen: std::sync::Mutex<Generations>,
    syncing: tokio::sync::Mutex<()>,
    /// Observations and offers waiting to be written.
    pub queue: ObservationQueue,
    /// The poll answers' update objects, rendered.
    pub updates: Updates,
}

fn poisoned<T>(err: std::sync::PoisonError<T>) -> T {
    err.into_inner()
}

impl Fleet {
    /// An empty fleet whose queue holds at most `queue_max` observations.
    pub fn new(queue_max: usize) -> Self {
        Fleet {
            devices: RwLock::new(HashMap::new()),
            interner: std::sync::Mutex::new(Interner::default()),
            catalogue: RwLock::new(Arc::new(OfferCatalogue::default())),
            seen: std::sync::Mutex::new(Generations {
                devices: -1,
                catalogue: -1,
            }),
            syncing: tokio::sync::Mutex::new(()),
            queue: ObservationQueue::new(queue_max),
            updates: Updates::default(),
        }
    }

    /// The device a token belongs to: the secret's SHA-256 compared in constant time.
    pub fn authenticate(&self, token: &str) -> Result<Arc<DeviceEntry>, ServiceError> {
        let refused =
            || ServiceError::Unauthenticated("the device token is not valid (unknown or decommissioned)".into());
        let presented = PresentedToken::parse(DEVICE_TOKEN_PREFIX, token).ok_or_else(refused)?;
        let key = lookup_key(presented.lookup).ok_or_else(refused)?;
        let entry = self
            .devices
            .read()
            .unwrap_or_else(poisoned)
            .get(&key)
            .cloned()
            .ok_or_else(refused)?;
        if presented.matches_digest(&entry.secret_digest) {
            Ok(entry)
        } else {
            Err(refused())
        }
    }

    /// The catalogue polls are answered from now.
    pub fn catalogue(&self) -> Arc<OfferCatalogue> {
        self.catalogue.read().unwrap_or_else(poisoned).clone()
    }

    /// Live devices held in memory.
    pub fn device_count(&self) -> usize {
        self.devices.read().unwrap_or_else(poisoned).len()
    }

    /// The generations this copy reflects.
    pub fn generations(&self) -> Generations {
        *self.seen.lock().unwrap_or_else(poisoned)
    }

    /// Takes changed devices into the copy: live ones in, decommissioned ones out.
    fn apply(&self, changed: &[DeviceKey]) {
        let mut interner = self.interner.lock().unwrap_or_else(poisoned);
        let entries: Vec<([u8; 12], Option<Arc<DeviceEntry>>)> = changed
            .iter()
            .filter_map(|record| {
                let key = lookup_key(&record.token_lookup)?;
                let entry = if record.decommissioned_at.is_some() {
                    None
                } else {
                    Some(Arc::new(interner.entry(record)?))
                };
                Some((key, entry))
            })
            .collect();
        drop(interner);
        let mut devices = self.devices.write().unwrap_or_else(poisoned);
        for (key, entry) in entries {
            match entry {
                Some(entry) => devices.insert(key, entry),
                None => devices.remove(&key),
            };
        }
    }

    /// Brings this copy up to the database's generations; returns whether anything
    /// was loaded.
    pub async fn sync(services: &Services) -> Result<bool, ServiceError> {
        let fleet = &services.fleet;
        let _one_at_a_time = fleet.syncing.lock().await;
        let known = fleet.generations();
        let config = services.config.clone();
        let (now, catalogue) = services
            .db
            .run(move |conn| {
                let now = Generations::read(conn)?;
                let catalogue = if now.catalogue == known.catalogue {
                    None
                } else {
                    let url = |id: &PatchId| config.url(&format!("/api/v1/patches/{id}/download"));
                    Some(OfferCatalogue::load(conn, &url)?)
                };
                Ok::<_, ServiceError>((now, catalogue))
            })
            .await?;
        let mut loaded = catalogue.is_some();
        if now.devices != known.devices {
            // In pages, so that a fleet enrolled at once is never all in memory twice.
            let mut after: Option<DeviceId> = None;
            loop {
                let from = after.take();
                let page = services
                    .db
                    .query(move |conn| DeviceRecord::changed_since(conn, known.devices, from.as_ref(), SYNC_PAGE))
                    .await?;
                loaded |= !page.is_empty();
                after = page.last().map(|d| d.id.clone());
                fleet.apply(&page);
                if page.len() < SYNC_PAGE as usize {
                    break;
                }
            }
        }
        if let Some(catalogue) = catalogue {
            *fleet.catalogue.write().unwrap_or_else(poisoned) = Arc::new(catalogue);
        }
        *fleet.seen.lock().unwrap_or_else(poisoned) = now;
        Ok(loaded)
    }
}
