//! Observations waiting to be written. Polls record what devices run here, in
//! memory, and never wait on the database; the flush job writes the batch once a
//! second. Consecutive identical observations of a device are folded while they
//! wait. While the database is away the batch stays (a flush that fails puts it
//! back); past `max` waiting observations the oldest are dropped and counted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::NaiveDateTime;

use crate::db::models::observation::to_the_second;
use crate::db::models::Seen;
use crate::domain::fleet::HeadReport;
use crate::domain::patch::Sha256;
use crate::domain::ObservationSource;
use crate::ids::{DeviceId, PatchId};

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

/// An observation waiting to be written, in a fixed size: the device and image as
/// bytes, the version shared with the other waiting observations of it. Memory
/// grows with the waiting observations (at most the queue's bound), not with how
/// often devices poll.
struct Waiting {
    device: [u8; 16],
    version: Arc<str>,
    image: Option<[u8; 32]>,
    source: ObservationSource,
    last_source: ObservationSource,
    first_seen_at: NaiveDateTime,
    last_seen_at: NaiveDateTime,
    times: i64,
}

impl Waiting {
    fn of(seen: Seen, versions: &mut HashSet<Arc<str>>) -> Option<Waiting> {
        let image = match &seen.image_sha256 {
            None => None,
            Some(hex) => Some(image_bytes(hex)?),
        };
        Some(Waiting {
            device: seen.device.to_bytes()?,
            version: share(versions, &seen.version),
            image,
            source: seen.source,
            last_source: seen.last_source,
            first_seen_at: seen.first_seen_at,
            last_seen_at: seen.last_seen_at,
            times: seen.times,
        })
    }

    fn seen(&self) -> Seen {
        Seen {
            device: DeviceId::from_bytes(self.device),
            version: self.version.to_string(),
            image_sha256: self.image.map(hex::encode),
            source: self.source,
            last_source: self.last_source,
            first_seen_at: self.first_seen_at,
            last_seen_at: self.last_seen_at,
            times: self.times,
        }
    }

    fn folds(&self, version: &str, image: Option<&[u8; 32]>) -> bool {
        &*self.version == version && self.image.as_ref() == image
    }
}

fn image_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex, &mut bytes).ok()?;
    Some(bytes)
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

/// The waiting observations' copy of `version`.
fn share(versions: &mut HashSet<Arc<str>>, version: &str) -> Arc<str> {
    if let Some(shared) = versions.get(version) {
        return shared.clone();
    }
    let shared: Arc<str> = Arc::from(version);
    versions.insert(shared.clone());
    shared
}

#[derive(Default)]
struct Pending {
    seen: VecDeque<Waiting>,
    /// Sequence number of `seen[0]`.
    base: u64,
    /// Each device's latest waiting observation, by sequence number.
    latest: HashMap<[u8; 16], u64>,
    /// The versions the waiting observations saw, each held once.
    versions: HashSet<Arc<str>>,
    /// Offers waiting: the device's bytes, the patch (shared), when.
    offers: VecDeque<([u8; 16], Arc<PatchId>, NaiveDateTime)>,
    /// The patches the waiting offers name, each held once.
    patches: HashSet<Arc<PatchId>>,
    /// Each device's latest head report (one per device, so bounded by the fleet).
    heads: HashMap<DeviceId, HeadReport>,
}

impl Pending {
    /// The device's waiting observation that saw `version` and `image`, if it is
    /// the device's latest.
    fn foldable(&mut self, device: &[u8; 16], version: &str, image: Option<&[u8; 32]>) -> Option<&mut Waiting> {
        let seq = *self.latest.get(device)?;
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.seen.get_mut(index).filter(|last| last.folds(version, image))
    }

    fn push(&mut self, waiting: Waiting, max: usize) -> u64 {
        let version = waiting.version.clone();
        if let Some(last) = self.foldable(&waiting.device, &version, waiting.image.as_ref()) {
            last.last_seen_at = last.last_seen_at.max(waiting.last_seen_at);
            last.last_source = waiting.last_source;
            last.times += waiting.times;
            return 0;
        }
        let seq = self.base + self.seen.len() as u64;
        self.latest.insert(waiting.device, seq);
        self.seen.push_back(waiting);
        self.trim(max)
    }

    /// Gives back what a burst grew the queue to once it has drained: a queue that
    /// held a million observations for a minute does not keep their room.
    fn shrink(&mut self) {
        const KEEP: usize = 4096;
        if self.seen.capacity() > KEEP && self.seen.len() < self.seen.capacity() / 4 {
            self.seen.shrink_to(self.seen.len() * 2);
        }
        if self.latest.capacity() > KEEP && self.latest.len() < self.latest.capacity() / 4 {
            self.latest.shrink_to(self.latest.len() * 2);
        }
        if self.offers.capacity() > KEEP && self.offers.len() < self.offers.capacity() / 4 {
            self.offers.shrink_to(self.offers.len() * 2);
        }
    }

    fn trim(&mut self, max: usize) -> u64 {
        let mut dropped = 0;
        while self.seen.len() + self.offers.len() > max {
            if self.offers.len() > self.seen.len() {
                self.offers.pop_front();
            } else if let Some(old) = self.seen.pop_front() {
                if self.latest.get(&old.device) == Some(&self.base) {
                    self.latest.remove(&old.device);
                }
                self.base += 1;
            }
            dropped += 1;
        }
        dropped
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
        let at = to_the_second(at);
        let image = image.and_then(|i| image_bytes(i.as_str()));
        let mut pending = self.pending();
        // The common case, a device seen again running the same: no allocation.
        if let Some(last) = pending.foldable(&device, version, image.as_ref()) {
            last.last_seen_at = last.last_seen_at.max(at);
            last.last_source = source;
            last.times += 1;
            return;
        }
        let version = share(&mut pending.versions, version);
        let waiting = Waiting {
            device,
            version,
            image,
            source,
            last_source: source,
            first_seen_at: at,
            last_seen_at: at,
            times: 1,
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
        let (waiting, offers, heads) = {
            let mut pending = self.pending();
            let count = most.min(pending.seen.len());
            let mut waiting = Vec::with_capacity(count);
            while waiting.len() < count {
                let Some(old) = pending.seen.pop_front() else {
                    break;
                };
                if pending.latest.get(&old.device) == Some(&pending.base) {
                    pending.latest.remove(&old.device);
                }
                pending.base += 1;
                waiting.push(old);
            }
            let offered = most.min(pending.offers.len());
            let offers: Vec<_> = pending.offers.drain(..offered).collect();
            let heads: Vec<_> = std::mem::take(&mut pending.heads).into_iter().collect();
            pending.shrink();
            (waiting, offers, heads)
        };
        // Made into rows outside the lock: polls do not wait on it.
        let batch = Batch {
            seen: waiting.iter().map(Waiting::seen).collect(),
            offers: offers
                .into_iter()
                .map(|(device, patch, at)| (DeviceId::from_bytes(device), (*patch).clone(), at))
                .collect(),
            heads,
        };
        drop(waiting);
        // Versions and patches no waiting entry holds any more.
        let mut pending = self.pending();
        pending.versions.retain(|v| Arc::strong_count(v) > 1);
        pending.patches.retain(|p| Arc::strong_count(p) > 1);
        drop(pending);
        batch
    }

    /// Puts back a batch that could not be written, before what arrived since; the
    /// oldest are dropped past the bound.
    pub fn put_back(&self, batch: Batch) {
        let dropped = {
            let mut pending = self.pending();
            let newer = std::mem::take(&mut *pending);
            let mut dropped = 0;
            let mut unwritable = 0;
            for seen in batch.seen {
                match Waiting::of(seen, &mut pending.versions) {
                    Some(waiting) => dropped += pending.push(waiting, self.max),
                    None => unwritable += 1,
                }
            }
            pending.versions.extend(newer.versions);
            for waiting in newer.seen {
                dropped += pending.push(waiting, self.max);
            }
            dropped += unwritable;
            let mut offers = VecDeque::with_capacity(batch.offers.len() + newer.offers.len());
            for (device, patch, at) in batch.offers {
                match device.to_bytes() {
                    Some(device) => offers.push_back((device, share_patch(&mut pending.patches, &patch), at)),
                    None => dropped += 1,
                }
            }
            pending.patches.extend(newer.patches);
            offers.extend(newer.offers);
            pending.offers = offers;
            // A newer report of a device wins over the one put back.
            pending.heads = batch.heads.into_iter().chain(newer.heads).collect();
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
    fn offers_come_back_whole_and_a_drained_queue_gives_back_its_room() {
        let queue = ObservationQueue::new(100_000);
        let patch = PatchId::generate();
        let devices: Vec<DeviceId> = (0..20_000).map(|_| DeviceId::generate()).collect();
        for device in &devices {
            queue.observe(key(device), "6.3.0r20", None, ObservationSource::Poll, at(0));
            queue.offered(key(device), &patch, at(0));
        }
        assert_eq!(queue.pending().patches.len(), 1, "one patch, held once");
        let batch = queue.take(usize::MAX);
        assert_eq!(batch.offers.len(), 20_000);
        assert_eq!((&batch.offers[7].0, &batch.offers[7].1), (&devices[7], &patch));
        {
            let pending = queue.pending();
            assert!(pending.seen.capacity() < 20_000, "{}", pending.seen.capacity());
            assert!(pending.offers.capacity() < 20_000 && pending.latest.capacity() < 20_000);
            assert!(pending.patches.is_empty() && pending.versions.is_empty());
        }
        queue.put_back(batch);
        let again = queue.take(usize::MAX);
        assert_eq!((again.seen.len(), again.offers.len()), (20_000, 20_000));
        assert_eq!(again.offers[19_999], (devices[19_999].clone(), patch.clone(), at(0)));
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
