//! Knowing that the database is down. When a connection cannot be had, the breaker
//! opens: for a short while every caller is told at once that the database is
//! unavailable, instead of each waiting out the pool's connection timeout. After the
//! wait one caller is let through to try again; its success closes the breaker, its
//! failure opens it for longer (doubling, up to a few seconds).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first wait after a failure.
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between tries.
const LONGEST_WAIT: Duration = Duration::from_secs(8);

#[derive(Debug, Default)]
enum State {
    #[default]
    Closed,
    /// Down: callers are refused until `until`; the next failure waits `wait * 2`.
    Open { until: Instant, wait: Duration },
    /// One caller is trying; the others are refused until it reports.
    Trying { wait: Duration },
}

/// Whether the database may be asked now.
#[derive(Debug, Default)]
pub struct Breaker {
    state: Mutex<State>,
}

/// The breaker refused: the database is known to be down; try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDown {
    pub retry_after: Duration,
}

impl Breaker {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Lets the caller through, or refuses it while the database is known down.
    pub fn admit(&self, now: Instant) -> Result<(), KnownDown> {
        let mut state = self.lock();
        match *state {
            State::Closed => Ok(()),
            State::Open { until, wait } if now >= until => {
                *state = State::Trying { wait };
                Ok(())
            }
            State::Open { until, .. } => Err(KnownDown {
                retry_after: until - now,
            }),
            State::Trying { .. } => Err(KnownDown {
                retry_after: FIRST_WAIT,
            }),
        }
    }

    /// A connection was had: the database is up.
    pub fn succeeded(&self) {
        *self.lock() = State::Closed;
    }

    /// No connection could be had: the database is down for a while.
    pub fn failed(&self, now: Instant) {
        let mut state = self.lock();
        let wait = match *state {
            State::Closed => FIRST_WAIT,
            State::Open { wait, .. } | State::Trying { wait } => (wait * 2).min(LONGEST_WAIT),
        };
        *state = State::Open {
            until: now + wait,
            wait,
        };
    }

    /// Whether the database is known to be down.
    pub fn is_open(&self) -> bool {
        !matches!(*self.lock(), State::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_refuses_callers_until_one_may_try_again() {
        let breaker = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(breaker.admit(t0), Ok(()));
        breaker.failed(t0);
        assert!(breaker.is_open());
        let refused = breaker.admit(t0 + Duration::from_millis(300)).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_millis(700));
        // After the wait one caller tries; the others are still refused meanwhile.
        assert_eq!(breaker.admit(t0 + FIRST_WAIT), Ok(()));
        assert!(breaker.admit(t0 + FIRST_WAIT).is_err());
        // It failed again: the wait doubles.
        breaker.failed(t0 + FIRST_WAIT);
        assert!(breaker.admit(t0 + FIRST_WAIT + Duration::from_millis(1500)).is_err());
        assert_eq!(breaker.admit(t0 + FIRST_WAIT * 3), Ok(()));
        breaker.succeeded();
        assert!(!breaker.is_open());
        assert_eq!(breaker.admit(t0 + FIRST_WAIT * 3), Ok(()));
    }

    #[test]
    fn the_wait_stops_growing() {
        let breaker = Breaker::default();
        let mut now = Instant::now();
        for _ in 0..10 {
            breaker.failed(now);
            now += LONGEST_WAIT;
            assert_eq!(
                breaker.admit(now),
                Ok(()),
                "a try is allowed after at most {LONGEST_WAIT:?}"
            );
        }
    }
}
