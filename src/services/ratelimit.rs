//! Rate limiting of guessable attempts (logins, device enrolments): a GCRA budget
//! per account (or token) and a larger one per client address, kept in memory. Each instance limits on its own; behind a load balancer
//! the effective budget is the per-instance budget times the instance count.
//!
//! Memory stays bounded under a flood of distinct e-mails or addresses: keys are
//! folded into a fixed number of buckets (a keyed hash, so a client cannot aim at
//! another account's bucket), and IPv6 addresses count per /64, the block one
//! client usually holds.

use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::services::error::ServiceError;

/// Buckets per budget: the most keys either map can hold.
pub const BUCKETS: u64 = 1 << 16;
/// Keys kept before stale ones are pruned.
const PRUNE_ABOVE: usize = 10_000;
/// A client address may try this many accounts' budgets (an office behind one NAT).
const ADDRESS_FACTOR: u32 = 4;

pub struct AttemptLimiter {
    by_account: DefaultKeyedRateLimiter<u64>,
    by_address: DefaultKeyedRateLimiter<u64>,
    clock: DefaultClock,
    /// Keys the bucket hash, fresh per process.
    seed: RandomState,
    /// What is limited, for the log.
    what: &'static str,
}

impl AttemptLimiter {
    pub fn new(what: &'static str, per_minute: NonZeroU32) -> Self {
        let per_address = per_minute.saturating_mul(NonZeroU32::MIN.saturating_add(ADDRESS_FACTOR - 1));
        AttemptLimiter {
            by_account: RateLimiter::keyed(Quota::per_minute(per_minute)),
            by_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            clock: DefaultClock::default(),
            seed: RandomState::new(),
            what,
        }
    }

    fn bucket(&self, key: impl Hash) -> u64 {
        self.seed.hash_one(key) % BUCKETS
    }

    /// The address as limited: IPv4 as it is, IPv6 by its /64.
    fn address_key(address: IpAddr) -> u128 {
        match address {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            IpAddr::V6(v6) => u128::from(v6) >> 64 | 1 << 127,
        }
    }

    /// Keys held by the two budgets, for tests and metrics.
    pub fn len(&self) -> (usize, usize) {
        (self.by_account.len(), self.by_address.len())
    }

    /// Spends one attempt for `account` from `address`; 429 with the wait when either
    /// budget is empty.
    pub fn check(&self, address: IpAddr, account: &str) -> Result<(), ServiceError> {
        if self.by_account.len() > PRUNE_ABOVE {
            self.by_account.retain_recent();
        }
        if self.by_address.len() > PRUNE_ABOVE {
            self.by_address.retain_recent();
        }
        let now = self.clock.now();
        // An attempt the address budget refuses spends nothing of the account's, so
        // one noisy address cannot lock an account out for everyone else.
        let address_bucket = self.bucket(Self::address_key(address));
        let refused = match self.by_address.check_key(&address_bucket) {
            Err(denied) => Some(denied),
            Ok(()) => self.by_account.check_key(&self.bucket(account.to_lowercase())).err(),
        };
        let wait = refused.map_or(Duration::ZERO, |denied| denied.wait_time_from(now));
        if wait.is_zero() {
            Ok(())
        } else {
            tracing::warn!(client.address = %address, limit = self.what, "rate limit reached");
            Err(ServiceError::RateLimited { retry_after: wait })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_account_then_429() {
        let limiter = AttemptLimiter::new("login", NonZeroU32::new(3).unwrap());
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            assert!(limiter.check(ip, "a@example.com").is_ok());
        }
        match limiter.check(ip, "A@example.com") {
            Err(ServiceError::RateLimited { retry_after }) => assert!(retry_after > Duration::ZERO),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(
            limiter.check(ip, "b@example.com").is_ok(),
            "another account has its own budget"
        );
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_within_the_buckets() {
        let limiter = AttemptLimiter::new("login", NonZeroU32::new(1000).unwrap());
        for n in 0..200_000u32 {
            let address = IpAddr::from(std::net::Ipv6Addr::from(u128::from(n) << 64));
            // Refusals are fine here; only the memory is measured.
            let _ = limiter.check(address, &format!("user{n}@example.com"));
        }
        let (accounts, addresses) = limiter.len();
        assert!(accounts as u64 <= BUCKETS, "{accounts} account keys");
        assert!(addresses as u64 <= BUCKETS, "{addresses} address keys");
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_budget() {
        let limiter = AttemptLimiter::new("login", NonZeroU32::new(1).unwrap());
        for n in 0..ADDRESS_FACTOR {
            let address: IpAddr = format!("2001:db8::{n:x}").parse().unwrap();
            assert!(limiter.check(address, &format!("user{n}@example.com")).is_ok());
        }
        let same_block: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert!(limiter.check(same_block, "another@example.com").is_err());
    }

    #[test]
    fn budget_per_address() {
        let limiter = AttemptLimiter::new("login", NonZeroU32::new(1).unwrap());
        let ip = IpAddr::from([127, 0, 0, 2]);
        for n in 0..ADDRESS_FACTOR {
            assert!(limiter.check(ip, &format!("user{n}@example.com")).is_ok());
        }
        assert!(limiter.check(ip, "another@example.com").is_err());
        assert!(limiter
            .check(IpAddr::from([127, 0, 0, 3]), "another@example.com")
            .is_ok());
    }
}
