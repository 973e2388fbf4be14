//! Observations waiting to be written. Polls record what devices run here, in
//! memory, and never wait on the database; the flush job writes the batch once a
//! second. Consecutive identical observations of a device are folded while they
//! wait. While the database is away the batch stays (a flush that fails puts it
//! back); past `max` waiting observations the oldest are dropped and counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;

use crate::db::models::Seen;
use crate::domain::fleet::HeadReport;
use crate::domain::patch::Sha256;
use crate::domain::ObservationSource;
use crate::ids::{DeviceId, PatchId};

use super::handles::HandleIndex;

/// One batch to write: observations oldest first, offers made, and the latest head
/// report of devices that are or were stale.
#[derive(Debug, Default)]
pub struct Batch {
    pub seen: Vec<Seen>,
    pub offers: Vec<(DeviceId, PatchId, NaiveDateTime)>,
    pub heads: Vec<(DeviceId, HeadReport)>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.offers.is_empty() && self.heads.is_empty()
    }

    pub fn len(&self) -> usize {
        self.seen.len() + self.offers.len() + self.heads.len()
    }
}

/// An observation waiting to be written, in 40 bytes: the device as bytes, its
/// version and image as numbers in the queue's shared tables, times as seconds.
/// Memory grows with the waiting observations (at most the queue's bound), not
/// with how often devices poll. A `Waiting` holds one count of its version and
/// image in the tables, given back when it is folded, written or dropped.
struct Waiting {
    device: [u8; 16],
    version: u32,
    /// The image's number plus one; zero when none was shown.
    image: u32,
    first_seen: u32,
    last_seen: u32,
    times: u32,
    source: ObservationSource,
    last_source: ObservationSource,
}

/// Seconds are counted from 2000-01-01T00:00:00Z in a `u32`, good until 2136.
const EPOCH_S: i64 = 946_684_800;

fn seconds(at: NaiveDateTime) -> u32 {
    let since = at.and_utc().timestamp().saturating_sub(EPOCH_S);
    u32::try_from(since.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX)
}

fn time(seconds: u32) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(EPOCH_S + i64::from(seconds), 0)
        .unwrap_or_default()
        .naive_utc()
}

impl Waiting {
    fn folds(&self, version: u32, image: u32) -> bool {
        self.version == version && self.image == image
    }

    /// Takes in a later sighting of the same: its count, its time, its source.
    fn fold(&mut self, last_seen: u32, last_source: ObservationSource, times: u32) {
        self.last_seen = self.last_seen.max(last_seen);
        self.last_source = last_source;
        self.times = self.times.saturating_add(times);
    }
}

fn image_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex, &mut bytes).ok()?;
    Some(bytes)
}

/// Bytes the table of `map` takes: its buckets (a power of two holding the capacity
/// at a load of 7/8, at least four), each an entry and a control byte.
fn map_bytes<K, V, S>(map: &HashMap<K, V, S>) -> usize {
    if map.capacity() == 0 {
        return 0;
    }
    let buckets = (map.capacity() * 8 / 7).next_power_of_two().max(4);
    buckets * (std::mem::size_of::<(K, V)>() + 1)
}

/// The waiting offers' copy of `patch`.
fn share_patch(patches: &mut HashSet<Arc<PatchId>>, patch: &PatchId) -> Arc<PatchId> {
    if let Some(shared) = patches.get(patch) {
        return shared.clone();
    }
    let shared = Arc::new(patch.clone());
    patches.insert(shared.clone());
    shared
}

/// Values the waiting observations share, each held once under a number, with a
/// count of the observations that hold it; a value none holds any more is let go
/// and its number used again, so the table is bounded by the queue, whatever
/// devices send.
struct Shared<T> {
    values: Vec<Option<(T, u32)>>,
    index: HashMap<T, u32>,
    free: Vec<u32>,
}

impl<T> Default for Shared<T> {
    fn default() -> Self {
        Shared {
            values: Vec::new(),
            index: HashMap::new(),
            free: Vec::new(),
        }
    }
}

impl<T: Clone + Eq + std::hash::Hash> Shared<T> {
    /// The number of `value`, if an observation holds it.
    fn find<Q>(&self, value: &Q) -> Option<u32>
    where
        T: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        self.index.get(value).copied()
    }

    /// Takes a count of `value` (by `make` when it is new); its number.
    fn hold<Q>(&mut self, value: &Q, make: impl FnOnce(&Q) -> T) -> u32
    where
        T: std::borrow::Borrow<Q>,
        Q: Eq + std::hash::Hash + ?Sized,
    {
        if let Some(at) = self.find(value) {
            self.hold_again(at);
            return at;
        }
        let value = make(value);
        let at = match self.free.pop() {
            Some(at) => at,
            None => {
                self.values.push(None);
                u32::try_from(self.values.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.values[at as usize] = Some((value.clone(), 1));
        self.index.insert(value, at);
        at
    }

    fn hold_again(&mut self, at: u32) {
        if let Some(Some((_, count))) = self.values.get_mut(at as usize) {
            *count += 1;
        }
    }

    /// Gives back a count of value `at`.
    fn release(&mut self, at: u32) {
        let Some(slot) = self.values.get_mut(at as usize) else {
            return;
        };
        let gone = match slot {
            Some((_, count)) => {
                *count = count.saturating_sub(1);
                *count == 0
            }
            None => false,
        };
        if gone {
            if let Some((value, _)) = slot.take() {
                self.index.remove(&value);
                self.free.push(at);
            }
        }
    }

    fn get(&self, at: u32) -> Option<&T> {
        self.values.get(at as usize)?.as_ref().map(|(value, _)| value)
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the table takes, besides the values' own heap (a version's text).
    fn memory(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<Option<(T, u32)>>()
            + map_bytes(&self.index)
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// Gives back the table's room once no observation holds a value.
    fn shrink(&mut self) {
        if self.index.is_empty() {
            *self = Shared::default();
        }
    }
}

#[derive(Default)]
struct Pending {
    seen: VecDeque<Waiting>,
    /// Sequence number of `seen[0]`.
    base: u64,
    /// Each device's latest waiting observation, by sequence number (every number
    /// in it names one that still waits).
    latest: HandleIndex<u64>,
    /// The versions the waiting observations saw.
    versions: Shared<Arc<str>>,
    /// The images they saw.
    images: Shared<[u8; 32]>,
    /// Offers waiting: the device's bytes, the patch (shared), when.
    offers: VecDeque<([u8; 16], Arc<PatchId>, NaiveDateTime)>,
    /// The patches the waiting offers name, each held once.
    patches: HashSet<Arc<PatchId>>,
    /// Each device's latest head report (one per device, so bounded by the fleet).
    heads: HashMap<DeviceId, HeadReport>,
}

/// The waiting observation with sequence number `seq`, if it still waits.
fn waiting_at(seen: &VecDeque<Waiting>, base: u64, seq: u64) -> Option<&Waiting> {
    seen.get(usize::try_from(seq.checked_sub(base)?).ok()?)
}

/// The device of each waiting observation, by sequence number, as the index of
/// each device's latest reads it.
fn device_in<'s>(seen: &'s VecDeque<Waiting>, base: u64) -> impl Fn(u64) -> Option<&'s [u8; 16]> {
    move |seq| waiting_at(seen, base, seq).map(|w| &w.device)
}

impl Pending {
    /// The device's waiting observation that saw `version` and `image` (by their
    /// numbers), if it is the device's latest.
    fn foldable(&mut self, device: &[u8; 16], version: u32, image: u32) -> Option<&mut Waiting> {
        let seq = self.latest.get(device, device_in(&self.seen, self.base))?;
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.seen.get_mut(index).filter(|last| last.folds(version, image))
    }

    /// Gives back what `waiting` holds in the shared tables.
    fn release(&mut self, waiting: &Waiting) {
        self.versions.release(waiting.version);
        if let Some(image) = waiting.image.checked_sub(1) {
            self.images.release(image);
        }
    }

    /// Queues `waiting` (which holds its version and image), folded into the
    /// device's latest when that saw the same; how many were dropped past `max`.
    fn push(&mut self, waiting: Waiting, max: usize) -> u64 {
        if let Some(last) = self.foldable(&waiting.device, waiting.version, waiting.image) {
            last.fold(waiting.last_seen, waiting.last_source, waiting.times);
            self.release(&waiting);
            return 0;
        }
        let seq = self.base + self.seen.len() as u64;
        self.seen.push_back(waiting);
        self.latest.set(seq, device_in(&self.seen, self.base));
        self.trim(max)
    }

    /// Takes the oldest waiting observation out of the queue.
    fn pop(&mut self) -> Option<Waiting> {
        let device = self.seen.front()?.device;
        self.latest.forget(&device, self.base);
        let old = self.seen.pop_front()?;
        self.base += 1;
        Some(old)
    }

    /// Gives back what a burst grew the queue to once it has drained: a queue that
    /// held a million observations for a minute does not keep their room.
    fn shrink(&mut self) {
        const KEEP: usize = 4096;
        if self.seen.capacity() > KEEP && self.seen.len() < self.seen.capacity() / 4 {
            self.seen.shrink_to(self.seen.len() * 2);
        }
        if self.latest.capacity() > KEEP && self.latest.len() < self.latest.capacity() / 4 {
            self.latest.shrink(device_in(&self.seen, self.base));
        }
        if self.offers.capacity() > KEEP && self.offers.len() < self.offers.capacity() / 4 {
            self.offers.shrink_to(self.offers.len() * 2);
        }
        self.versions.shrink();
        self.images.shrink();
    }

    fn trim(&mut self, max: usize) -> u64 {
        let mut dropped = 0;
        while self.seen.len() + self.offers.len() > max {
            if self.offers.len() > self.seen.len() {
                self.offers.pop_front();
            } else if let Some(old) = self.pop() {
                self.release(&old);
            }
            dropped += 1;
        }
        dropped
    }

    /// `seen` as a waiting observation holding its version and image; `None` when
    /// its device or image cannot be held as bytes.
    fn waiting(&mut self, seen: &Seen) -> Option<Waiting> {
        let image = match &seen.image_sha256 {
            None => None,
            Some(hex) => Some(image_bytes(hex)?),
        };
        let device = seen.device.to_bytes()?;
        let version = self.versions.hold(seen.version.as_str(), |v| Arc::from(v));
        let image = image.map_or(0, |bytes| self.images.hold(&bytes, |b| *b) + 1);
        Some(Waiting {
            device,
            version,
            image,
            first_seen: seconds(seen.first_seen_at),
            last_seen: seconds(seen.last_seen_at),
            times: u32::try_from(seen.times.max(1)).unwrap_or(u32::MAX),
            source: seen.source,
            last_source: seen.last_source,
        })
    }
}

/// A waiting observation taken out of the queue, with what it shares held, to be
/// made into a row outside the lock.
struct Taken {
    waiting: Waiting,
    version: Arc<str>,
    image: Option<[u8; 32]>,
}

impl Taken {
    fn seen(&self) -> Seen {
        let w = &self.waiting;
        Seen {
            device: DeviceId::from_bytes(w.device),
            version: self.version.to_string(),
            image_sha256: self.image.map(hex::encode),
            source: w.source,
            last_source: w.last_source,
            first_seen_at: time(w.first_seen),
            last_seen_at: time(w.last_seen),
            times: i64::from(w.times),
        }
    }
}

/// The observations and offers of this instance that are not written yet.
pub struct ObservationQueue {
    pending: Mutex<Pending>,
    max: usize,
    dropped: AtomicU64,
}

impl ObservationQueue {
    pub fn new(max: usize) -> Self {
        ObservationQueue {
            pending: Mutex::new(Pending::default()),
            max: max.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves consistent data: each push is whole.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that the device `device` (its id's bytes) was seen running `version`
    /// (and image) at `at`, kept to the second: sightings of one second are written
    /// together.
    pub fn observe(
        &self,
        device: [u8; 16],
        version: &str,
        image: Option<&Sha256>,
        source: ObservationSource,
        at: NaiveDateTime,
    ) {
        let at = seconds(at);
        let image = image.and_then(|i| image_bytes(i.as_str()));
        let mut pending = self.pending();
        // The common case, a device seen again running the same: no allocation.
        let known = (
            pending.versions.find(version),
            match &image {
                None => Some(0),
                Some(bytes) => pending.images.find(bytes).map(|at| at + 1),
            },
        );
        if let (Some(version), Some(image)) = known {
            if let Some(last) = pending.foldable(&device, version, image) {
                last.fold(at, source, 1);
                return;
            }
        }
        let version = pending.versions.hold(version, |v| Arc::from(v));
        let image = image.map_or(0, |bytes| pending.images.hold(&bytes, |b| *b) + 1);
        let waiting = Waiting {
            device,
            version,
            image,
            first_seen: at,
            last_seen: at,
            times: 1,
            source,
            last_source: source,
        };
        let dropped = pending.push(waiting, self.max);
        drop(pending);
        self.count_dropped(dropped);
    }

    /// Queues the first offer of `patch` to the device `device` (its id's bytes), to
    /// be written.
    pub fn offered(&self, device: [u8; 16], patch: &PatchId, at: NaiveDateTime) {
        let dropped = {
            let mut pending = self.pending();
            let patch = share_patch(&mut pending.patches, patch);
            pending.offers.push_back((device, patch, at));
            pending.trim(self.max)
        };
        self.count_dropped(dropped);
    }

    /// Records what `device` said of its view of the log; only its latest report waits.
    pub fn head_report(&self, device: &DeviceId, report: HeadReport) {
        self.pending().heads.insert(device.clone(), report);
    }

    /// Counts observations that could not be written and were given up.
    pub fn count_lost(&self, count: usize) {
        self.count_dropped(count as u64);
    }

    fn count_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Takes the oldest `most` observations and offers waiting, and every head
    /// report, to be written.
    pub fn take(&self, most: usize) -> Batch {
        let (taken, offers, heads) = {
            let mut pending = self.pending();
            let count = most.min(pending.seen.len());
            let mut taken = Vec::with_capacity(count);
            while taken.len() < count {
                let Some(waiting) = pending.pop() else {
                    break;
                };
                let version = pending
                    .versions
                    .get(waiting.version)
                    .cloned()
                    .unwrap_or_else(|| Arc::from(""));
                let image = match waiting.image.checked_sub(1) {
                    None => None,
                    Some(at) => pending.images.get(at).copied(),
                };
                pending.release(&waiting);
                taken.push(Taken {
                    waiting,
                    version,
                    image,
                });
            }
            let offered = most.min(pending.offers.len());
            let offers: Vec<_> = pending.offers.drain(..offered).collect();
            let heads: Vec<_> = std::mem::take(&mut pending.heads).into_iter().collect();
            pending.shrink();
            (taken, offers, heads)
        };
        // Made into rows outside the lock: polls do not wait on it.
        let batch = Batch {
            seen: taken.iter().map(Taken::seen).collect(),
            offers: offers
                .into_iter()
                .map(|(device, patch, at)| (DeviceId::from_bytes(device), (*patch).clone(), at))
                .collect(),
            heads,
        };
        drop(taken);
        // Patches no waiting offer names any more.
        self.pending().patches.retain(|p| Arc::strong_count(p) > 1);
        batch
    }

    /// Puts back a batch that could not be written, before what arrived since; the
    /// oldest are dropped past the bound.
    pub fn put_back(&self, batch: Batch) {
        let dropped = {
            let mut pending = self.pending();
            let newer = std::mem::take(&mut pending.seen);
            pending.latest = HandleIndex::default();
            pending.base = 0;
            let mut dropped = 0;
            let mut unwritable = 0;
            for seen in &batch.seen {
                match pending.waiting(seen) {
                    Some(waiting) => dropped += pending.push(waiting, self.max),
                    None => unwritable += 1,
                }
            }
            for waiting in newer {
                dropped += pending.push(waiting, self.max);
            }
            dropped += unwritable;
            let newer_offers = std::mem::take(&mut pending.offers);
            let mut offers = VecDeque::with_capacity(batch.offers.len() + newer_offers.len());
            for (device, patch, at) in batch.offers {
                match device.to_bytes() {
                    Some(device) => offers.push_back((device, share_patch(&mut pending.patches, &patch), at)),
                    None => dropped += 1,
                }
            }
            offers.extend(newer_offers);
            pending.offers = offers;
            // A newer report of a device wins over the one put back.
            let newer_heads = std::mem::take(&mut pending.heads);
            pending.heads = batch.heads.into_iter().chain(newer_heads).collect();
            dropped + pending.trim(self.max)
        };
        self.count_dropped(dropped);
    }

    /// Observations and offers waiting.
    pub fn len(&self) -> usize {
        let pending = self.pending();
        pending.seen.len() + pending.offers.len() + pending.heads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the waiting observations and offers take, with their index and the
    /// values they share, from the structures' capacities.
    pub fn memory(&self) -> usize {
        use std::mem::size_of;
        let pending = self.pending();
        pending.seen.capacity() * size_of::<Waiting>()
            + pending.latest.memory()
            + pending.versions.memory()
            + pending.images.memory()
            + pending.offers.capacity() * size_of::<([u8; 16], Arc<PatchId>, NaiveDateTime)>()
            + pending.patches.len() * size_of::<PatchId>()
            + map_bytes(&pending.heads)
    }

    /// How many were dropped because the queue was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(device: &DeviceId) -> [u8; 16] {
        device.to_bytes().unwrap()
    }

    fn at(second: u32) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_700_000_000 + i64::from(second), 0)
            .unwrap()
            .naive_utc()
    }

    #[test]
    fn identical_observations_fold_and_changes_do_not() {
        let queue = ObservationQueue::new(100);
        let device = DeviceId::generate();
        for second in 0..50 {
            queue.observe(key(&device), "6.3.0r20", None, ObservationSource::Poll, at(second));
        }
        queue.observe(key(&device), "6.3.0r21", None, ObservationSource::Poll, at(60));
        queue.observe(key(&device), "6.3.0r21", None, ObservationSource::Pull, at(61));
        let batch = queue.take(usize::MAX);
        assert_eq!(batch.seen.len(), 2);
        assert_eq!(batch.seen[0].times, 50);
        assert_eq!(batch.seen[0].first_seen_at, at(0));
        assert_eq!(batch.seen[0].last_seen_at, at(49));
        assert_eq!(batch.seen[1].source, ObservationSource::Poll);
        assert_eq!(batch.seen[1].last_source, ObservationSource::Pull);
        assert!(queue.is_empty());
    }

    #[test]
    fn past_the_bound_the_oldest_are_dropped_and_counted() {
        let queue = ObservationQueue::new(3);
        let devices: Vec<DeviceId> = (0..5).map(|_| DeviceId::generate()).collect();
        for (n, device) in devices.iter().enumerate() {
            queue.observe(key(device), "1.0", None, ObservationSource::Poll, at(n as u32));
        }
        assert_eq!(queue.dropped(), 2);
        let batch = queue.take(usize::MAX);
        let kept: Vec<&DeviceId> = batch.seen.iter().map(|s| &s.device).collect();
        assert_eq!(kept, devices[2..].iter().collect::<Vec<_>>());
        // A device whose observation was dropped starts a new one, not a fold.
        queue.observe(key(&devices[0]), "1.0", None, ObservationSource::Poll, at(9));
        assert_eq!(queue.take(usize::MAX).seen.len(), 1);
    }

    #[test]
    fn a_batch_put_back_comes_before_newer_ones_and_keeps_folding() {
        let queue = ObservationQueue::new(10);
        let device = DeviceId::generate();
        queue.observe(key(&device), "1.0", None, ObservationSource::Poll, at(0));
        let batch = queue.take(usize::MAX);
        queue.observe(key(&device), "1.0", None, ObservationSource::Poll, at(5));
        queue.observe(key(&device), "2.0", None, ObservationSource::Poll, at(6));
        queue.put_back(batch);
        let again = queue.take(usize::MAX);
        assert_eq!(again.seen.len(), 2);
        assert_eq!((again.seen[0].times, again.seen[0].last_seen_at), (2, at(5)));
        assert_eq!(again.seen[1].version, "2.0");
    }

    #[test]
    fn a_partial_take_gives_the_oldest_and_the_rest_keep_folding() {
        let queue = ObservationQueue::new(100);
        let (a, b) = (DeviceId::generate(), DeviceId::generate());
        queue.observe(key(&a), "1.0", None, ObservationSource::Poll, at(0));
        queue.observe(key(&b), "1.0", None, ObservationSource::Poll, at(1));
        queue.observe(key(&a), "2.0", None, ObservationSource::Poll, at(2));
        let first = queue.take(2);
        let taken: Vec<(&DeviceId, &str)> = first.seen.iter().map(|s| (&s.device, s.version.as_str())).collect();
        assert_eq!(taken, [(&a, "1.0"), (&b, "1.0")]);
        // `a`'s waiting observation still folds; `b`'s was taken, so it starts anew.
        queue.observe(key(&a), "2.0", None, ObservationSource::Poll, at(3));
        queue.observe(key(&b), "1.0", None, ObservationSource::Poll, at(4));
        let rest = queue.take(usize::MAX);
        assert_eq!(rest.seen.len(), 2);
        assert_eq!((rest.seen[0].times, rest.seen[0].last_seen_at), (2, at(3)));
        assert_eq!((&rest.seen[1].device, rest.seen[1].times), (&b, 1));
        assert!(queue.is_empty());
    }

    #[test]
    fn the_queue_writes_what_a_plain_list_of_sightings_would_under_any_mix_of_sightings_takes_and_put_backs() {
        // The model: every sighting in order, folded into its device's last entry
        // when that is the same version and still waiting. (The bound is far off
        // here; dropping past it has a test of its own.)
        struct Model {
            rows: VecDeque<(usize, usize, i64)>,
        }
        impl Model {
            fn observe(&mut self, device: usize, version: usize, max: usize) {
                let last = self.rows.iter_mut().rev().find(|(d, _, _)| *d == device);
                match last {
                    Some((_, v, times)) if *v == version => *times += 1,
                    _ => {
                        self.rows.push_back((device, version, 1));
                        while self.rows.len() > max {
                            self.rows.pop_front();
                        }
                    }
                }
            }
        }
        let max = 100_000;
        let queue = ObservationQueue::new(max);
        let mut model = Model { rows: VecDeque::new() };
        let devices: Vec<DeviceId> = (0..40).map(|_| DeviceId::generate()).collect();
        let versions = ["6.3.0r19", "6.3.0r20", "6.3.0r21"];
        let row = |seen: &Seen| {
            let device = devices.iter().position(|d| *d == seen.device).unwrap();
            let version = versions.iter().position(|v| *v == seen.version).unwrap();
            (device, version, seen.times)
        };
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            usize::try_from(state % below).unwrap()
        };
        for step in 0..20_000 {
            match next(100) {
                0..=89 => {
                    let (device, version) = (next(40), next(3).min(next(3)));
                    queue.observe(
                        key(&devices[device]),
                        versions[version],
                        None,
                        ObservationSource::Poll,
                        at(0),
                    );
                    model.observe(device, version, max);
                }
                90..=96 => {
                    let most = next(60);
                    let batch = queue.take(most);
                    let taken: Vec<_> = batch.seen.iter().map(row).collect();
                    let expected: Vec<_> = model.rows.drain(..most.min(model.rows.len())).collect();
                    assert_eq!(taken, expected, "step {step}: a take of {most}");
                    if next(2) == 0 {
                        // The write failed: the batch comes back before what came since.
                        queue.put_back(batch);
                        let mut merged = Model { rows: VecDeque::new() };
                        for (device, version, times) in expected.into_iter().chain(model.rows.drain(..)) {
                            match merged.rows.iter_mut().rev().find(|(d, _, _)| *d == device) {
                                Some((_, v, t)) if *v == version => *t += times,
                                _ => merged.rows.push_back((device, version, times)),
                            }
                        }
                        while merged.rows.len() > max {
                            merged.rows.pop_front();
                        }
                        model = merged;
                    }
                }
                _ => {
                    let all = queue.take(usize::MAX);
                    let taken: Vec<_> = all.seen.iter().map(row).collect();
                    let expected: Vec<_> = model.rows.drain(..).collect();
                    assert_eq!(taken, expected, "step {step}: a take of all");
                }
            }
        }
    }

    #[test]
    fn offers_come_back_whole_and_a_drained_queue_gives_back_its_room() {
        let queue = ObservationQueue::new(100_000);
        let patch = PatchId::generate();
        let devices: Vec<DeviceId> = (0..20_000).map(|_| DeviceId::generate()).collect();
        for device in &devices {
            queue.observe(key(device), "6.3.0r20", None, ObservationSource::Poll, at(0));
            queue.offered(key(device), &patch, at(0));
        }
        assert_eq!(queue.pending().patches.len(), 1, "one patch, held once");
        let full = queue.memory();
        assert!(
            full >= 20_000 * (std::mem::size_of::<Waiting>() + 8 + 1),
            "observations, the index and offers are counted: {full}"
        );
        let batch = queue.take(usize::MAX);
        assert!(queue.memory() < full / 10, "{} of {full}", queue.memory());
        assert_eq!(batch.offers.len(), 20_000);
        assert_eq!((&batch.offers[7].0, &batch.offers[7].1), (&devices[7], &patch));
        {
            let pending = queue.pending();
            assert!(pending.seen.capacity() < 20_000, "{}", pending.seen.capacity());
            assert!(pending.offers.capacity() < 20_000 && pending.latest.capacity() < 20_000);
            assert!(pending.patches.is_empty() && pending.versions.is_empty() && pending.images.is_empty());
        }
        queue.put_back(batch);
        let again = queue.take(usize::MAX);
        assert_eq!((again.seen.len(), again.offers.len()), (20_000, 20_000));
        assert_eq!(again.offers[19_999], (devices[19_999].clone(), patch.clone(), at(0)));
    }

    #[test]
    fn a_waiting_observation_is_forty_bytes_and_what_it_shares_is_bounded_by_the_queue() {
        assert_eq!(std::mem::size_of::<Waiting>(), 40);
        // One device sending a new version and image with every poll: past the
        // bound the oldest go, and so do the versions and images only they held.
        let queue = ObservationQueue::new(100);
        let device = DeviceId::generate();
        for n in 0..10_000u32 {
            let image: Sha256 = format!("{n:064x}").parse().unwrap();
            queue.observe(
                key(&device),
                &format!("1.{n}"),
                Some(&image),
                ObservationSource::Poll,
                at(n),
            );
        }
        assert_eq!(queue.dropped(), 9_900);
        {
            let pending = queue.pending();
            assert_eq!((pending.versions.index.len(), pending.images.index.len()), (100, 100));
            assert!(pending.versions.values.len() <= 101, "numbers are used again");
        }
        let batch = queue.take(usize::MAX);
        assert_eq!(batch.seen.len(), 100);
        assert_eq!(batch.seen[99].version, "1.9999");
        assert_eq!(
            batch.seen[99].image_sha256.as_deref(),
            Some(format!("{:064x}", 9_999).as_str())
        );
        assert_eq!(batch.seen[99].first_seen_at, at(9_999));
        let pending = queue.pending();
        assert!(pending.versions.is_empty() && pending.images.is_empty());
    }

    #[test]
    fn images_and_versions_come_back_as_they_were_seen() {
        let queue = ObservationQueue::new(10);
        let (a, b) = (DeviceId::generate(), DeviceId::generate());
        let image: Sha256 = "AB".repeat(32).parse().unwrap();
        queue.observe(key(&a), "6.3.0r21", Some(&image), ObservationSource::Poll, at(0));
        queue.observe(key(&b), "6.3.0r21", None, ObservationSource::Poll, at(0));
        queue.observe(key(&a), "6.3.0r21", None, ObservationSource::Poll, at(1));
        let batch = queue.take(usize::MAX);
        let seen: Vec<(&DeviceId, &str, Option<&str>)> = batch
            .seen
            .iter()
            .map(|s| (&s.device, s.version.as_str(), s.image_sha256.as_deref()))
            .collect();
        let hex = "ab".repeat(32);
        assert_eq!(
            seen,
            [
                (&a, "6.3.0r21", Some(hex.as_str())),
                (&b, "6.3.0r21", None),
                (&a, "6.3.0r21", None)
            ]
        );
    }
}
