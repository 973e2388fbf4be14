//! Request budgets held in eight bytes each, for callers already known by an entry
//! in memory (a device): the generic cell rate algorithm, one atomic per caller, so
//! checking a budget takes no lock and no database, and one caller's spending
//! touches no one else's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A rate: `per_minute` requests a minute, as many at once after a quiet minute.
#[derive(Clone, Copy, Debug)]
pub struct Rate {
    epoch: Instant,
    interval_ns: u64,
    burst_ns: u64,
}

impl Rate {
    pub fn per_minute(per_minute: std::num::NonZeroU32) -> Rate {
        let interval_ns = 60_000_000_000 / u64::from(per_minute.get());
        Rate {
            epoch: Instant::now(),
            interval_ns,
            burst_ns: interval_ns * u64::from(per_minute.get()),
        }
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// One caller's budget: the time its next request is due under the rate.
#[derive(Debug, Default)]
pub struct Budget {
    due_ns: AtomicU64,
}

impl Budget {
    /// Spends one request; the wait until one is allowed when the budget is spent.
    pub fn spend(&self, rate: &Rate) -> Result<(), Duration> {
        let now = rate.now_ns();
        let mut due = self.due_ns.load(Ordering::Relaxed);
        loop {
            let next = due.max(now) + rate.interval_ns;
            let ahead = next - now;
            if ahead > rate.burst_ns {
                return Err(Duration::from_nanos(ahead - rate.burst_ns));
            }
            match self
                .due_ns
                .compare_exchange_weak(due, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => due = actual,
            }
        }
    }
}

/// Budgets of a small, known set of callers (customers), by key.
#[derive(Debug)]
pub struct KeyedBudgets<K> {
    rate: Rate,
    budgets: std::sync::Mutex<std::collections::HashMap<K, Budget>>,
}

impl<K: std::hash::Hash + Eq + Clone> KeyedBudgets<K> {
    pub fn new(rate: Rate) -> Self {
        KeyedBudgets {
            rate,
            budgets: Default::default(),
        }
    }

    /// Spends one request of `key`'s budget; the wait when it is spent.
    pub fn spend(&self, key: &K) -> Result<(), Duration> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        if !budgets.contains_key(key) {
            budgets.insert(key.clone(), Budget::default());
        }
        budgets.get(key).map_or(Ok(()), |budget| budget.spend(&self.rate))
    }
}

/// Work in flight by customer, each capped at a share: what a claim may still take.
#[derive(Debug)]
pub struct Shares {
    share: usize,
    in_flight: std::collections::HashMap<crate::ids::CustomerId, usize>,
}

impl Shares {
    pub fn new(share: usize) -> Shares {
        Shares {
            share: share.max(1),
            in_flight: Default::default(),
        }
    }

    /// For the next claim: how many of each customer it may take (so none goes past
    /// its share), and the customers at their share, comma-separated.
    pub fn claim_limits(&self) -> (i64, String) {
        let busiest = self
            .in_flight
            .values()
            .copied()
            .filter(|n| *n < self.share)
            .max()
            .unwrap_or(0);
        let full: Vec<String> = self
            .in_flight
            .iter()
            .filter(|(_, n)| **n >= self.share)
            .map(|(c, _)| c.to_string())
            .collect();
        ((self.share - busiest) as i64, full.join(","))
    }

    pub fn started(&mut self, customer: &crate::ids::CustomerId) {
        *self.in_flight.entry(customer.clone()).or_default() += 1;
    }

    pub fn ended(&mut self, customer: &crate::ids::CustomerId) {
        if let Some(count) = self.in_flight.get_mut(customer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.in_flight.remove(customer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn a_burst_of_the_rate_then_a_wait_of_one_interval() {
        let rate = Rate::per_minute(NonZeroU32::new(60).unwrap());
        let budget = Budget::default();
        for n in 0..60 {
            assert!(budget.spend(&rate).is_ok(), "request {n} of the burst");
        }
        let wait = budget.spend(&rate).expect_err("the 61st request at once");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        // A refused request spends nothing: the wait stays what it was.
        let again = budget.spend(&rate).expect_err("still spent");
        assert!(again <= wait, "{again:?} after {wait:?}");
    }

    #[test]
    fn budgets_are_each_their_own() {
        let rate = Rate::per_minute(NonZeroU32::new(2).unwrap());
        let (greedy, quiet) = (Budget::default(), Budget::default());
        while greedy.spend(&rate).is_ok() {}
        assert!(
            quiet.spend(&rate).is_ok(),
            "one caller's spending left another without budget"
        );
    }
}
