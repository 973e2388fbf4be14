//! Observations waiting to be written. Polls record what devices run here, in
//! memory, and never wait on the database; the flush job writes the batch once a
//! second. Consecutive identical observations of a device are folded while they
//! wait. While the database is away the batch stays (a flush that fails puts it
//! back); past `max` waiting observations the oldest are dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use chrono::NaiveDateTime;

use crate::db::models::observation::to_the_second;
use crate::db::models::Seen;
use crate::domain::fleet::HeadReport;
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

#[derive(Default)]
struct Pending {
    seen: VecDeque<Seen>,
    /// Sequence number of `seen[0]`.
    base: u64,
    /// Each device's latest waiting observation, by sequence number.
    latest: HashMap<DeviceId, u64>,
    offers: VecDeque<(DeviceId, PatchId, NaiveDateTime)>,
    /// Each device's latest head report (one per device, so bounded by the fleet).
    heads: HashMap<DeviceId, HeadReport>,
}

impl Pending {
    /// The device's waiting observation that saw `version` and `image`, if it is
    /// the device's latest.
    fn foldable(&mut self, device: &DeviceId, version: &str, image: Option<&str>) -> Option<&mut Seen> {
        let seq = *self.latest.get(device)?;
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        self.seen
            .get_mut(index)
            .filter(|last| last.version == version && last.image_sha256.as_deref() == image)
    }

    fn push(&mut self, seen: Seen, max: usize) -> u64 {
        if let Some(last) = self.foldable(&seen.device, &seen.version, seen.image_sha256.as_deref()) {
            last.last_seen_at = last.last_seen_at.max(seen.last_seen_at);
            last.last_source = seen.last_source;
            last.times += seen.times;
            return 0;
        }
        let seq = self.base + self.seen.len() as u64;
        self.latest.insert(seen.device.clone(), seq);
        self.seen.push_back(seen);
        self.trim(max)
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
    /// Patches this instance offered to each device (written or not), so that a
    /// repeated offer costs no write.
    offered: Mutex<HashMap<DeviceId, Vec<PatchId>>>,
    max: usize,
    dropped: AtomicU64,
}

impl ObservationQueue {
    pub fn new(max: usize) -> Self {
        ObservationQueue {
            pending: Mutex::new(Pending::default()),
            offered: Mutex::new(HashMap::new()),
            max: max.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves consistent data: each push is whole.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn offered_map(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Vec<PatchId>>> {
        self.offered.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `device` was seen running `version` (and image) at `at`, kept to
    /// the second: sightings of one second are written together.
    pub fn observe(
        &self,
        device: &DeviceId,
        version: &str,
        image_sha256: Option<&str>,
        source: ObservationSource,
        at: NaiveDateTime,
    ) {
        let at = to_the_second(at);
        let mut pending = self.pending();
        // The common case, a device seen again running the same: no allocation.
        if let Some(last) = pending.foldable(device, version, image_sha256) {
            last.last_seen_at = last.last_seen_at.max(at);
            last.last_source = source;
            last.times += 1;
            return;
        }
        let seen = Seen {
            device: device.clone(),
            version: version.to_owned(),
            image_sha256: image_sha256.map(str::to_owned),
            source,
            last_source: source,
            first_seen_at: at,
            last_seen_at: at,
            times: 1,
        };
        let dropped = pending.push(seen, self.max);
        drop(pending);
        self.count_dropped(dropped);
    }

    /// Records that `patch` was offered to `device`; only the first offer is written.
    pub fn offered(&self, device: &DeviceId, patch: &PatchId, at: NaiveDateTime) {
        {
            let mut offered = self.offered_map();
            if offered.get(device).is_some_and(|list| list.contains(patch)) {
                return;
            }
            offered.entry(device.clone()).or_default().push(patch.clone());
        }
        let dropped = {
            let mut pending = self.pending();
            pending.offers.push_back((device.clone(), patch.clone(), at));
            pending.trim(self.max)
        };
        self.count_dropped(dropped);
    }

    /// Records what `device` said of its view of the log; only its latest report waits.
    pub fn head_report(&self, device: &DeviceId, report: HeadReport) {
        self.pending().heads.insert(device.clone(), report);
    }

    /// Whether this instance offered `patch` to `device`.
    pub fn was_offered(&self, device: &DeviceId, patch: &PatchId) -> bool {
        self.offered_map().get(device).is_some_and(|list| list.contains(patch))
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

    /// Takes everything waiting, to be written.
    pub fn take(&self) -> Batch {
        let pending = std::mem::take(&mut *self.pending());
        Batch {
            seen: pending.seen.into(),
            offers: pending.offers.into(),
            heads: pending.heads.into_iter().collect(),
        }
    }

    /// Puts back a batch that could not be written, before what arrived since; the
    /// oldest are dropped past the bound.
    pub fn put_back(&self, batch: Batch) {
        let dropped = {
            let mut pending = self.pending();
            let newer = std::mem::take(&mut *pending);
            let mut dropped = 0;
            for seen in batch.seen.into_iter().chain(newer.seen) {
                dropped += pending.push(seen, self.max);
            }
            pending.offers = batch.offers.into_iter().chain(newer.offers).collect();
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
            queue.observe(&device, "6.3.0r20", None, ObservationSource::Poll, at(second));
        }
        queue.observe(&device, "6.3.0r21", None, ObservationSource::Poll, at(60));
        queue.observe(&device, "6.3.0r21", None, ObservationSource::Pull, at(61));
        let batch = queue.take();
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
            queue.observe(device, "1.0", None, ObservationSource::Poll, at(n as u32));
        }
        assert_eq!(queue.dropped(), 2);
        let batch = queue.take();
        let kept: Vec<&DeviceId> = batch.seen.iter().map(|s| &s.device).collect();
        assert_eq!(kept, devices[2..].iter().collect::<Vec<_>>());
        // A device whose observation was dropped starts a new one, not a fold.
        queue.observe(&devices[0], "1.0", None, ObservationSource::Poll, at(9));
        assert_eq!(queue.take().seen.len(), 1);
    }

    #[test]
    fn a_batch_put_back_comes_before_newer_ones_and_keeps_folding() {
        let queue = ObservationQueue::new(10);
        let device = DeviceId::generate();
        queue.observe(&device, "1.0", None, ObservationSource::Poll, at(0));
        let batch = queue.take();
        queue.observe(&device, "1.0", None, ObservationSource::Poll, at(5));
        queue.observe(&device, "2.0", None, ObservationSource::Poll, at(6));
        queue.put_back(batch);
        let again = queue.take();
        assert_eq!(again.seen.len(), 2);
        assert_eq!((again.seen[0].times, again.seen[0].last_seen_at), (2, at(5)));
        assert_eq!(again.seen[1].version, "2.0");
    }

    #[test]
    fn an_offer_is_queued_once() {
        let queue = ObservationQueue::new(10);
        let (device, patch) = (DeviceId::generate(), PatchId::generate());
        queue.offered(&device, &patch, at(0));
        queue.offered(&device, &patch, at(1));
        assert!(queue.was_offered(&device, &patch));
        assert_eq!(queue.take().offers.len(), 1);
    }
}
