//! When a device installs what a poll offers it: at once, or — when a maintenance
//! window of its customer covers it and none is open — at the next opening, having
//! downloaded the patch meanwhile. Decided from the catalogue in memory, like the
//! rest of the poll.
//!
//! A window's cap on devices installing at once holds for the whole cluster: a
//! device told to install now under a capped window takes a place in the database
//! (`install_places`), which it keeps until it reports the install's end or the
//! window closes; once the places are taken, the others are told to come back in a
//! minute. Only these devices reach the database from a poll, and an instance
//! remembers a place it granted for a minute, so a device asking again inside it
//! costs nothing. When the database does not answer, the device is told to wait:
//! a cap is never exceeded for want of an answer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use crate::db::models::window::take_place;
use crate::domain::window::{install_time, wait_for, InstallTime};
use crate::ids::{CustomerId, DeviceId};
use crate::services::Services;

use super::catalogue::{Offer, OfferCatalogue};

/// How soon a device that found its window's places taken asks again, and how
/// long an instance remembers a place it granted.
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
    /// Its open windows all cap installs at once: now if one of them (position,
    /// when it closes, cap) has a place for it.
    Capped {
        open: Vec<(u16, DateTime<Utc>, u32)>,
    },
}

/// The places this instance granted lately, by device: until when it trusts them
/// without asking the database again.
#[derive(Default)]
pub struct InstallSlots {
    granted: Mutex<HashMap<[u8; 16], DateTime<Utc>>>,
}

impl InstallSlots {
    fn holds(&self, device: &[u8; 16], at: DateTime<Utc>) -> bool {
        let mut granted = self.granted.lock().unwrap_or_else(|e| e.into_inner());
        granted.retain(|_, until| *until > at);
        granted.contains_key(device)
    }

    fn grant(&self, device: [u8; 16], until: DateTime<Utc>) {
        self.granted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device, until);
    }

    /// `device` ended its install: this instance forgets its place (the database's
    /// is given up with the report).
    pub fn release(&self, device: &[u8; 16]) {
        self.granted.lock().unwrap_or_else(|e| e.into_inner()).remove(device);
    }
}

/// When the device `uuid` of `customer`, offered `offer`, installs; `interval` is
/// its poll interval.
pub fn timing(
    catalogue: &OfferCatalogue,
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
        InstallTime::Now { open } => {
            let mut capped = Vec::with_capacity(open.len());
            for (index, closes) in open {
                match (windows.windows[index].max_concurrent, u16::try_from(index)) {
                    (Some(cap), Ok(position)) => capped.push((position, closes, cap)),
                    _ => return Timing::Now,
                }
            }
            if capped.is_empty() {
                Timing::Now
            } else {
                Timing::Capped { open: capped }
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

/// Settles a [`Timing::Capped`]: a place in one of `open` for the device `uuid` of
/// `customer`, or a wait of a minute (within `interval`).
pub async fn place(
    services: &Services,
    (customer, uuid): (&CustomerId, [u8; 16]),
    open: Vec<(u16, DateTime<Utc>, u32)>,
    interval: Duration,
    at: DateTime<Utc>,
) -> Timing {
    let slots = &services.fleet.installs;
    if slots.holds(&uuid, at) {
        return Timing::Now;
    }
    let (customer, device) = (customer.clone(), DeviceId::from_bytes(uuid));
    let now = at.naive_utc();
    let taken = services
        .db
        .run(move |conn| {
            conn.write_transaction(|conn| {
                for (position, closes, cap) in open {
                    if take_place(
                        conn,
                        &customer,
                        i32::from(position),
                        &device,
                        cap,
                        closes.naive_utc(),
                        now,
                    )? {
                        return Ok(Some(closes));
                    }
                }
                Ok::<_, crate::services::ServiceError>(None)
            })
        })
        .await;
    let remember = TimeDelta::from_std(FULL_RETRY).unwrap_or(TimeDelta::MAX);
    match taken {
        Ok(Some(closes)) => {
            slots.grant(uuid, closes.min(at + remember));
            Timing::Now
        }
        Ok(None) => wait_a_minute(interval, at),
        Err(err) => {
            tracing::warn!(error = %err, "no place could be taken in a capped window; the device is told to wait");
            wait_a_minute(interval, at)
        }
    }
}

fn wait_a_minute(interval: Duration, at: DateTime<Utc>) -> Timing {
    let wait = FULL_RETRY.min(interval);
    Timing::Deferred {
        after: at + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX),
        wait,
    }
}
