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

/// Prefix of device tokens: `pwd_<lookup>_<secret>`.
pub const DEVICE_TOKEN_PREFIX: &str = "pwd";

/// A live device as polls see it.
#[derive(Debug)]
pub struct DeviceEntry {
    pub id: DeviceId,
    pub name: String,
    pub customer: CustomerId,
    pub product: ProductId,
    pub platform: Option<String>,
    secret_hash: String,
}

impl DeviceEntry {
    fn of(record: &DeviceKey) -> DeviceEntry {
        DeviceEntry {
            id: record.id.clone(),
            name: record.name.clone(),
            customer: record.customer_id.clone(),
            product: record.product_id.clone(),
            platform: record.platform.clone(),
            secret_hash: record.token_hash.clone(),
        }
    }
}

/// The in-memory fleet of this instance.
pub struct Fleet {
    devices: RwLock<HashMap<String, Arc<DeviceEntry>>>,
    catalogue: RwLock<Arc<OfferCatalogue>>,
    seen: std::sync::Mutex<Generations>,
    syncing: tokio::sync::Mutex<()>,
    /// Observations and offers waiting to be written.
    pub queue: ObservationQueue,
}

fn poisoned<T>(err: std::sync::PoisonError<T>) -> T {
    err.into_inner()
}

impl Fleet {
    /// An empty fleet whose queue holds at most `queue_max` observations.
    pub fn new(queue_max: usize) -> Self {
        Fleet {
            devices: RwLock::new(HashMap::new()),
            catalogue: RwLock::new(Arc::new(OfferCatalogue::default())),
            seen: std::sync::Mutex::new(Generations {
                devices: -1,
                catalogue: -1,
            }),
            syncing: tokio::sync::Mutex::new(()),
            queue: ObservationQueue::new(queue_max),
        }
    }

    /// The device a token belongs to: the secret's SHA-256 compared in constant time.
    pub fn authenticate(&self, token: &str) -> Result<Arc<DeviceEntry>, ServiceError> {
        let refused =
            || ServiceError::Unauthenticated("the device token is not valid (unknown or decommissioned)".into());
        let presented = PresentedToken::parse(DEVICE_TOKEN_PREFIX, token).ok_or_else(refused)?;
        let entry = self
            .devices
            .read()
            .unwrap_or_else(poisoned)
            .get(presented.lookup)
            .cloned()
            .ok_or_else(refused)?;
        if presented.matches(&entry.secret_hash) {
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

    /// Brings this copy up to the database's generations; returns whether anything
    /// was loaded.
    pub async fn sync(services: &Services) -> Result<bool, ServiceError> {
        let fleet = &services.fleet;
        let _one_at_a_time = fleet.syncing.lock().await;
        let known = fleet.generations();
        let config = services.config.clone();
        let (now, changed, catalogue) = services
            .db
            .run(move |conn| {
                let now = Generations::read(conn)?;
                let changed = if now.devices == known.devices {
                    Vec::new()
                } else {
                    DeviceRecord::changed_since(conn, known.devices)?
                };
                let catalogue = if now.catalogue == known.catalogue {
                    None
                } else {
                    let url = |id: &PatchId| config.url(&format!("/api/v1/patches/{id}/download"));
                    Some(OfferCatalogue::load(conn, &url)?)
                };
                Ok::<_, ServiceError>((now, changed, catalogue))
            })
            .await?;
        let loaded = !changed.is_empty() || catalogue.is_some();
        if !changed.is_empty() {
            let mut devices = fleet.devices.write().unwrap_or_else(poisoned);
            for record in &changed {
                if record.decommissioned_at.is_some() {
                    devices.remove(&record.token_lookup);
                } else {
                    devices.insert(record.token_lookup.clone(), Arc::new(DeviceEntry::of(record)));
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
