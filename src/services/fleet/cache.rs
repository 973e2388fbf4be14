//! This instance's copy of the fleet: devices by token (for authenticating polls
//! without the database) and the offer catalogue. [`Fleet::sync`] keeps it in step:
//! it reads the two change counters and loads what moved — the devices changed
//! since the last generation seen, or the whole catalogue. Services that change
//! either on this instance sync right after their commit; the sync job catches
//! changes made by other instances a few times a second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::db::models::device::DeviceKey;
use crate::db::models::{DeviceRecord, Generations};
use crate::ids::{CustomerId, DeviceId, PatchId, ProductId};
use crate::secrets::{PresentedToken, DIGEST_PREFIX};
use crate::services::{ServiceError, Services};

use super::catalogue::OfferCatalogue;
use super::handles::HandleIndex;
use super::observations::ObservationQueue;
use super::updates::Updates;
use crate::services::budget::{Budget, Rate};

/// Devices loaded per query when the copy catches up.
const SYNC_PAGE: i64 = 5_000;

/// Prefix of device tokens: `pwd_<lookup>_<secret>`.
pub const DEVICE_TOKEN_PREFIX: &str = "pwd";

/// A live device as a request sees it: a handle into the fleet's table, with the
/// customer, product and platform it shares with other devices. Its mutable state
/// (budget, staleness, the patch last offered) stays in the table, reached through
/// [`Fleet`].
#[derive(Clone, Debug)]
pub struct DeviceEntry {
    slot: u32,
    uuid: [u8; 16],
    pub customer: Arc<CustomerId>,
    pub product: Arc<ProductId>,
    pub platform: Option<Arc<str>>,
}

impl DeviceEntry {
    /// The device's id.
    pub fn id(&self) -> DeviceId {
        DeviceId::from_bytes(self.uuid)
    }

    /// The device's id as sixteen bytes.
    pub fn uuid(&self) -> [u8; 16] {
        self.uuid
    }
}

/// One device in the table: fixed size, no allocation of its own. Shared values are
/// indexes into the table's interned lists; the mutable state is atomics, changed
/// under the table's read lock.
struct Slot {
    uuid: [u8; 16],
    /// The token's lookup part, by which the index finds the slot.
    lookup: [u8; 12],
    /// The start of the token secret's SHA-256.
    secret_digest: [u8; DIGEST_PREFIX],
    customer: u32,
    product: u32,
    /// The platform's index plus one; zero when the device has none.
    platform: u32,
    /// The patch last offered to it, as the fleet's patch index plus one.
    offered: AtomicU32,
    /// What the device may still ask this minute.
    budget: Budget,
    /// Whether the device last said it is stale: a poll that says otherwise ends it.
    stale: AtomicBool,
}

/// Values many devices share, each held once and named by its index.
struct Interned<T: ?Sized> {
    values: Vec<Arc<T>>,
    index: HashMap<Arc<T>, u32>,
}

impl<T: ?Sized> Default for Interned<T> {
    fn default() -> Self {
        Interned {
            values: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: ?Sized + Eq + std::hash::Hash> Interned<T> {
    fn get(&self, value: &T) -> Option<u32> {
        self.index.get(value).copied()
    }

    /// The index of `value`, added when new; `None` past 2^32 values.
    fn intern(&mut self, value: &T, share: impl FnOnce(&T) -> Arc<T>) -> Option<u32> {
        if let Some(at) = self.get(value) {
            return Some(at);
        }
        let at = u32::try_from(self.values.len()).ok()?;
        let shared = share(value);
        self.values.push(shared.clone());
        self.index.insert(shared, at);
        Some(at)
    }

    fn value(&self, at: u32) -> &Arc<T> {
        &self.values[at as usize]
    }
}

/// The devices: a flat table of slots, found by the token's lookup part.
#[derive(Default)]
struct Table {
    slots: Vec<Slot>,
    /// Slots of decommissioned devices, taken again by the next devices.
    free: Vec<u32>,
    /// Slot numbers by their tokens' lookup parts, compared through the slots.
    by_lookup: HandleIndex<u32>,
    customers: Interned<CustomerId>,
    products: Interned<ProductId>,
    platforms: Interned<str>,
}

/// The lookup part held in slot `at`, as the token index reads it.
fn lookup_in<'s>(slots: &'s [Slot]) -> impl Fn(u32) -> Option<&'s [u8; 12]> {
    move |at| slots.get(at as usize).map(|slot| &slot.lookup)
}

impl Table {
    /// Takes a changed device in: a live one into its slot (kept when it has one,
    /// so its budget carries over), a decommissioned one out.
    fn apply(&mut self, record: &DeviceKey) {
        let Some(key) = lookup_key(&record.token_lookup) else {
            return;
        };
        if record.decommissioned_at.is_some() {
            if let Some(at) = self.by_lookup.take(&key, lookup_in(&self.slots)) {
                let slot = &mut self.slots[at as usize];
                slot.uuid = [0; 16];
                slot.lookup = [0; 12];
                slot.secret_digest = [0; DIGEST_PREFIX];
                self.free.push(at);
            }
            return;
        }
        let mut digest = [0u8; 32];
        let (Some(uuid), Ok(())) = (
            record.id.to_bytes(),
            hex::decode_to_slice(&record.token_hash, &mut digest),
        ) else {
            return;
        };
        let mut secret_digest = [0u8; DIGEST_PREFIX];
        secret_digest.copy_from_slice(&digest[..DIGEST_PREFIX]);
        let platform = match record.platform.as_deref() {
            None => Some(0),
            Some(p) => self.platforms.intern(p, |p| Arc::from(p)).map(|at| at + 1),
        };
        let (Some(customer), Some(product), Some(platform)) = (
            self.customers.intern(&record.customer_id, |c| Arc::new(c.clone())),
            self.products.intern(&record.product_id, |p| Arc::new(p.clone())),
            platform,
        ) else {
            return;
        };
        let stale = record.stale_since.is_some();
        if let Some(at) = self.by_lookup.get(&key, lookup_in(&self.slots)) {
            let slot = &mut self.slots[at as usize];
            slot.uuid = uuid;
            slot.secret_digest = secret_digest;
            (slot.customer, slot.product, slot.platform) = (customer, product, platform);
            slot.stale.store(stale, Ordering::Relaxed);
            return;
        }
        let slot = Slot {
            uuid,
            lookup: key,
            secret_digest,
            customer,
            product,
            platform,
            offered: AtomicU32::new(0),
            budget: Budget::default(),
            stale: AtomicBool::new(stale),
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => {
                let Ok(at) = u32::try_from(self.slots.len()) else {
                    return;
                };
                self.slots.push(slot);
                at
            }
        };
        self.by_lookup.set(at, lookup_in(&self.slots));
    }

    /// The slot `device` was handed, while it is still that device's.
    fn slot(&self, device: &DeviceEntry) -> Option<&Slot> {
        self.slots
            .get(device.slot as usize)
            .filter(|slot| slot.uuid == device.uuid)
    }
}

/// Bytes the fleet's own structures take, by part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FleetMemory {
    /// The table of device slots.
    pub devices: usize,
    /// The index from tokens' lookup parts to slots.
    pub token_index: usize,
    /// Observations and offers waiting to be written, with the values they share.
    pub queue: usize,
}

/// The map key of a token's lookup part (24 hex digits).
fn lookup_key(lookup: &str) -> Option<[u8; 12]> {
    let mut key = [0u8; 12];
    hex::decode_to_slice(lookup, &mut key).ok()?;
    Some(key)
}

/// The in-memory fleet of this instance.
pub struct Fleet {
    table: RwLock<Table>,
    /// Patches offered, by index, for the slots' `offered`.
    patches: RwLock<Interned<PatchId>>,
    catalogue: RwLock<Arc<OfferCatalogue>>,
    seen: std::sync::Mutex<Generations>,
    syncing: tokio::sync::Mutex<()>,
    /// Held while the queue is written, so that batches commit in the order they
    /// were taken (a device's rows, and which is its latest, follow that order).
    flushing: tokio::sync::Mutex<()>,
    /// Observations and offers waiting to be written.
    pub queue: ObservationQueue,
    /// The poll answers' update objects, rendered.
    pub updates: Updates,
    /// Places of devices installing in capped maintenance windows.
    pub installs: super::installs::InstallSlots,
}

fn poisoned<T>(err: std::sync::PoisonError<T>) -> T {
    err.into_inner()
}

impl Fleet {
    /// An empty fleet whose queue holds at most `queue_max` observations.
    pub fn new(queue_max: usize) -> Self {
        Fleet {
            table: RwLock::new(Table::default()),
            patches: RwLock::new(Interned::default()),
            catalogue: RwLock::new(Arc::new(OfferCatalogue::default())),
            seen: std::sync::Mutex::new(Generations {
                devices: -1,
                catalogue: -1,
            }),
            syncing: tokio::sync::Mutex::new(()),
            flushing: tokio::sync::Mutex::new(()),
            queue: ObservationQueue::new(queue_max),
            updates: Updates::default(),
            installs: super::installs::InstallSlots::default(),
        }
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(poisoned)
    }

    /// The device a token belongs to: the secret's SHA-256 compared in constant time.
    pub fn authenticate(&self, token: &str) -> Result<DeviceEntry, ServiceError> {
        let refused =
            || ServiceError::Unauthenticated("the device token is not valid (unknown or decommissioned)".into());
        let presented = PresentedToken::parse(DEVICE_TOKEN_PREFIX, token).ok_or_else(refused)?;
        let key = lookup_key(presented.lookup).ok_or_else(refused)?;
        let table = self.table();
        let at = table.by_lookup.get(&key, lookup_in(&table.slots)).ok_or_else(refused)?;
        let slot = &table.slots[at as usize];
        if !presented.matches_digest_prefix(&slot.secret_digest) {
            return Err(refused());
        }
        Ok(DeviceEntry {
            slot: at,
            uuid: slot.uuid,
            customer: table.customers.value(slot.customer).clone(),
            product: table.products.value(slot.product).clone(),
            platform: slot.platform.checked_sub(1).map(|p| table.platforms.value(p).clone()),
        })
    }

    /// Spends one of `device`'s requests; the wait when its budget is spent. A
    /// device decommissioned since it authenticated spends nothing.
    pub fn spend(&self, device: &DeviceEntry, rate: &Rate) -> Result<(), Duration> {
        self.table().slot(device).map_or(Ok(()), |slot| slot.budget.spend(rate))
    }

    /// Records whether `device` says it is stale; whether it was before.
    pub fn swap_stale(&self, device: &DeviceEntry, stale: bool) -> bool {
        self.table()
            .slot(device)
            .is_some_and(|slot| slot.stale.swap(stale, Ordering::Relaxed))
    }

    fn patch_index(&self, patch: &PatchId) -> Option<u32> {
        if let Some(at) = self.patches.read().unwrap_or_else(poisoned).get(patch) {
            return Some(at);
        }
        self.patches
            .write()
            .unwrap_or_else(poisoned)
            .intern(patch, |p| Arc::new(p.clone()))
    }

    /// Records that `patch` is offered to `device`; whether it is the first offer of
    /// it since the device was last offered another (only that one is written).
    pub fn offer(&self, device: &DeviceEntry, patch: &PatchId) -> bool {
        let Some(mark) = self.patch_index(patch).map(|at| at + 1) else {
            return true;
        };
        self.table()
            .slot(device)
            .is_some_and(|slot| slot.offered.swap(mark, Ordering::Relaxed) != mark)
    }

    /// Whether this instance's latest offer to `device` was `patch`.
    pub fn was_offered(&self, device: &DeviceEntry, patch: &PatchId) -> bool {
        let Some(at) = self.patches.read().unwrap_or_else(poisoned).get(patch) else {
            return false;
        };
        self.table()
            .slot(device)
            .is_some_and(|slot| slot.offered.load(Ordering::Relaxed) == at + 1)
    }

    /// The right to write the queue, one writer at a time.
    pub async fn flushing(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.flushing.lock().await
    }

    /// The catalogue polls are answered from now.
    pub fn catalogue(&self) -> Arc<OfferCatalogue> {
        self.catalogue.read().unwrap_or_else(poisoned).clone()
    }

    /// Live devices held in memory.
    pub fn device_count(&self) -> usize {
        self.table().by_lookup.len()
    }

    /// What the fleet's own structures take in memory, from their capacities.
    pub fn memory(&self) -> FleetMemory {
        let table = self.table();
        FleetMemory {
            devices: table.slots.capacity() * std::mem::size_of::<Slot>()
                + table.free.capacity() * std::mem::size_of::<u32>(),
            token_index: table.by_lookup.memory(),
            queue: self.queue.memory(),
        }
    }

    /// The generations this copy reflects.
    pub fn generations(&self) -> Generations {
        *self.seen.lock().unwrap_or_else(poisoned)
    }

    /// Takes changed devices into the copy: live ones in, decommissioned ones out.
    fn apply(&self, changed: &[DeviceKey]) {
        let mut table = self.table.write().unwrap_or_else(poisoned);
        for record in changed {
            table.apply(record);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::IssuedToken;

    fn record(token: &IssuedToken, customer: &CustomerId, product: &ProductId, platform: Option<&str>) -> DeviceKey {
        DeviceKey {
            id: DeviceId::generate(),
            customer_id: customer.clone(),
            product_id: product.clone(),
            platform: platform.map(str::to_owned),
            token_lookup: token.lookup.clone(),
            token_hash: token.secret_hash.clone(),
            decommissioned_at: None,
            stale_since: None,
        }
    }

    #[test]
    fn a_device_costs_one_fixed_size_slot_and_shares_the_rest() {
        assert!(
            std::mem::size_of::<Slot>() <= 72,
            "{} bytes",
            std::mem::size_of::<Slot>()
        );
        let fleet = Fleet::new(10);
        let (customer, product) = (CustomerId::generate(), ProductId::generate());
        let tokens: Vec<IssuedToken> = (0..100).map(|_| IssuedToken::generate(DEVICE_TOKEN_PREFIX)).collect();
        let records: Vec<DeviceKey> = tokens
            .iter()
            .map(|t| record(t, &customer, &product, Some("ssg-500")))
            .collect();
        fleet.apply(&records);
        assert_eq!(fleet.device_count(), 100);
        let memory = fleet.memory();
        let slot = std::mem::size_of::<Slot>();
        assert!((100 * slot..200 * slot).contains(&memory.devices), "{memory:?}");
        assert!((115 * 5..=256 * 5 + 64).contains(&memory.token_index), "{memory:?}");
        let table = fleet.table();
        assert_eq!(table.slots.len(), 100);
        assert_eq!(
            (
                table.customers.values.len(),
                table.products.values.len(),
                table.platforms.values.len()
            ),
            (1, 1, 1)
        );
        drop(table);
        let device = fleet.authenticate(tokens[7].plaintext()).unwrap();
        assert_eq!(device.id(), records[7].id);
        assert_eq!((*device.customer).clone(), customer);
        assert_eq!(device.platform.as_deref(), Some("ssg-500"));
        let other_secret = tokens[8].plaintext().rsplit('_').next().unwrap();
        let wrong = format!("{DEVICE_TOKEN_PREFIX}_{}_{other_secret}", tokens[7].lookup);
        assert!(
            fleet.authenticate(&wrong).is_err(),
            "a known lookup with another's secret"
        );
    }

    #[test]
    fn the_token_index_finds_every_live_device_and_none_gone_as_the_fleet_changes() {
        let fleet = Fleet::new(10);
        let (customer, product) = (CustomerId::generate(), ProductId::generate());
        let tokens: Vec<IssuedToken> = (0..5_000).map(|_| IssuedToken::generate(DEVICE_TOKEN_PREFIX)).collect();
        let mut records: Vec<DeviceKey> = tokens.iter().map(|t| record(t, &customer, &product, None)).collect();
        fleet.apply(&records);
        // Every other device goes; as many new ones take their slots.
        for record in records.iter_mut().step_by(2) {
            record.decommissioned_at = Some(crate::db::models::now());
        }
        let gone: Vec<DeviceKey> = records.iter().step_by(2).cloned().collect();
        fleet.apply(&gone);
        let newer: Vec<IssuedToken> = (0..2_500).map(|_| IssuedToken::generate(DEVICE_TOKEN_PREFIX)).collect();
        let new_records: Vec<DeviceKey> = newer.iter().map(|t| record(t, &customer, &product, None)).collect();
        fleet.apply(&new_records);
        assert_eq!(fleet.device_count(), 5_000);
        assert_eq!(fleet.table().slots.len(), 5_000, "freed slots are taken again");
        for (i, token) in tokens.iter().enumerate() {
            let found = fleet.authenticate(token.plaintext()).map(|d| d.id());
            if i % 2 == 0 {
                assert!(found.is_err(), "device {i} was decommissioned");
            } else {
                assert_eq!(found.unwrap(), records[i].id, "device {i}");
            }
        }
        for (token, record) in newer.iter().zip(&new_records) {
            assert_eq!(fleet.authenticate(token.plaintext()).unwrap().id(), record.id);
        }
    }

    #[test]
    fn a_decommissioned_device_leaves_its_slot_to_the_next_without_its_state() {
        let fleet = Fleet::new(10);
        let (customer, product) = (CustomerId::generate(), ProductId::generate());
        let (old_token, new_token) = (
            IssuedToken::generate(DEVICE_TOKEN_PREFIX),
            IssuedToken::generate(DEVICE_TOKEN_PREFIX),
        );
        let mut old = record(&old_token, &customer, &product, None);
        fleet.apply(std::slice::from_ref(&old));
        let held = fleet.authenticate(old_token.plaintext()).unwrap();
        let patch = PatchId::generate();
        assert!(fleet.offer(&held, &patch), "the first offer is written");
        assert!(!fleet.offer(&held, &patch), "a repeated offer is not");
        assert!(fleet.was_offered(&held, &patch));
        assert!(!fleet.swap_stale(&held, true));
        assert!(fleet.swap_stale(&held, false));

        old.decommissioned_at = Some(crate::db::models::now());
        fleet.apply(&[old, record(&new_token, &customer, &product, None)]);
        assert!(fleet.authenticate(old_token.plaintext()).is_err());
        assert_eq!(fleet.table().slots.len(), 1, "the slot is taken again");
        let next = fleet.authenticate(new_token.plaintext()).unwrap();
        assert_eq!(next.slot, held.slot);
        assert!(!fleet.was_offered(&next, &patch), "the offer was the old device's");
        assert!(
            !fleet.was_offered(&held, &patch),
            "the old handle no longer reaches the slot"
        );
        assert!(!fleet.offer(&held, &patch), "nor changes it");
        assert!(fleet.offer(&next, &patch));
        let other = PatchId::generate();
        assert!(fleet.offer(&next, &other), "another patch is a new offer");
        assert!(fleet.was_offered(&next, &other) && !fleet.was_offered(&next, &patch));
    }
}
