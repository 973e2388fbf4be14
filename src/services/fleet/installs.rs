//! When a device installs what a poll offers it: at once, or — when a maintenance
//! window of its customer covers it and none is open — at the next opening, having
//! downloaded the patch meanwhile. Decided from the catalogue in memory, like the
//! rest of the poll.
//!
//! A window's cap on devices installing at once is held here: a device told to
//! install now under a capped window takes a place in it until it reports the
//! install's end or the window closes; once the places are taken, the others are
//! told to come back shortly. The places are this instance's: behind several
//! instances each counts the devices it answered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::window::{install_time, wait_for, InstallTime, Window};
use crate::ids::CustomerId;

use super::catalogue::{Offer, OfferCatalogue};

/// How soon a device that found its window's places taken asks again.
pub const FULL_RETRY: Duration = Duration::from_secs(60);

/// When the device polling now installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timing {
    Now,
    /// Download now, install not before `after`; ask again in `wait`.
    Deferred {
        after: DateTime<Utc>,
        wait: Duration,
    },
}

/// The devices holding a place in one window, with when the place lapses.
type Places = HashMap<[u8; 16], DateTime<Utc>>;

/// The places devices hold in capped windows, by customer and window.
#[derive(Default)]
pub struct InstallSlots {
    by_window: Mutex<HashMap<(CustomerId, u16), Places>>,
}

impl InstallSlots {
    /// Whether `device` may install now in one of the `open` windows (index, when
    /// it closes) of `windows`: one without a cap, one where it holds a place, or
    /// one with a place free, which it takes.
    fn admit(
        &self,
        customer: &CustomerId,
        device: &[u8; 16],
        windows: &[Window],
        open: &[(usize, DateTime<Utc>)],
        at: DateTime<Utc>,
    ) -> bool {
        if open
            .iter()
            .any(|(i, _)| windows.get(*i).is_some_and(|w| w.max_concurrent.is_none()))
        {
            return true;
        }
        let mut slots = self.by_window.lock().unwrap_or_else(|e| e.into_inner());
        for (index, closes) in open {
            let (Some(window), Ok(key)) = (windows.get(*index), u16::try_from(*index)) else {
                continue;
            };
            let cap = window.max_concurrent.map_or(usize::MAX, |c| c as usize);
            let places = slots.entry((customer.clone(), key)).or_default();
            places.retain(|_, until| *until > at);
            if places.contains_key(device) {
                return true;
            }
            if places.len() < cap {
                places.insert(*device, *closes);
                return true;
            }
        }
        false
    }

    /// `device` ended its install: its places are free.
    pub fn release(&self, customer: &CustomerId, device: &[u8; 16]) {
        let mut slots = self.by_window.lock().unwrap_or_else(|e| e.into_inner());
        for ((owner, _), places) in slots.iter_mut() {
            if owner == customer {
                places.remove(device);
            }
        }
        slots.retain(|_, places| !places.is_empty());
    }

    /// How many devices hold a place in each window of `customer`, by window.
    pub fn taken(&self, customer: &CustomerId, at: DateTime<Utc>) -> HashMap<u16, usize> {
        let slots = self.by_window.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter(|((owner, _), _)| owner == customer)
            .map(|((_, window), places)| (*window, places.values().filter(|until| **until > at).count()))
            .collect()
    }
}

/// When the device `uuid` of `customer`, offered `offer`, installs; `interval` is
/// its poll interval.
pub fn timing(
    catalogue: &OfferCatalogue,
    slots: &InstallSlots,
    (customer, uuid): (&CustomerId, [u8; 16]),
    offer: &Offer,
    interval: Duration,
    at: DateTime<Utc>,
) -> Timing {
    let Some(windows) = catalogue.windows.get(customer) else {
        return Timing::Now;
    };
    if offer.wire.emergency && catalogue.emergencies_ignore_windows.contains(customer) {
        return Timing::Now;
    }
    match install_time(windows.covering(&uuid), at) {
        InstallTime::Now { open } if open.is_empty() => Timing::Now,
        InstallTime::Now { open } => {
            if slots.admit(customer, &uuid, &windows.windows, &open, at) {
                Timing::Now
            } else {
                let wait = FULL_RETRY.min(interval);
                Timing::Deferred {
                    after: at + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX),
                    wait,
                }
            }
        }
        InstallTime::Deferred { after, window } => {
            // Spread over the window's start, so its devices do not all come at once.
            let spread = windows.windows[window].spread().as_millis().max(1);
            let offset = Duration::from_millis(
                u64::try_from(u128::from(crate::random::fast_u64()) % spread).unwrap_or_default(),
            );
            Timing::Deferred {
                after,
                wait: wait_for(at, after, offset, interval),
            }
        }
        // Windows that never open again do not hold a fix back for ever.
        InstallTime::Never => Timing::Now,
    }
}
