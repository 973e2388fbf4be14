//! Login rate limiting: a GCRA budget per account and a larger one per client
//! address, kept in memory. Each instance limits on its own; behind a load balancer
//! the effective budget is the per-instance budget times the instance count.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::AppError;

/// Keys kept before stale ones are pruned.
const PRUNE_ABOVE: usize = 10_000;
/// A client address may try this many accounts' budgets (an office behind one NAT).
const ADDRESS_FACTOR: u32 = 4;

pub struct LoginLimiter {
    by_account: DefaultKeyedRateLimiter<String>,
    by_address: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl LoginLimiter {
    pub fn new(per_minute: NonZeroU32) -> Self {
        let per_address = per_minute.saturating_mul(NonZeroU32::MIN.saturating_add(ADDRESS_FACTOR - 1));
        LoginLimiter {
            by_account: RateLimiter::keyed(Quota::per_minute(per_minute)),
            by_address: RateLimiter::keyed(Quota::per_minute(per_address)),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one attempt for `account` from `address`; 429 with the wait when either
    /// budget is empty.
    pub fn check(&self, address: IpAddr, account: &str) -> Result<(), AppError> {
        if self.by_account.len() > PRUNE_ABOVE {
            self.by_account.retain_recent();
        }
        if self.by_address.len() > PRUNE_ABOVE {
            self.by_address.retain_recent();
        }
        let now = self.clock.now();
        // An attempt the address budget refuses spends nothing of the account's, so
        // one noisy address cannot lock an account out for everyone else.
        let refused = match self.by_address.check_key(&address) {
            Err(denied) => Some(denied),
            Ok(()) => self.by_account.check_key(&account.to_lowercase()).err(),
        };
        let wait = refused.map_or(Duration::ZERO, |denied| denied.wait_time_from(now));
        if wait.is_zero() {
            Ok(())
        } else {
            tracing::warn!(client.address = %address, "login rate limit reached");
            Err(AppError::RateLimited { retry_after: wait })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_account_then_429() {
        let limiter = LoginLimiter::new(NonZeroU32::new(3).unwrap());
        let ip = IpAddr::from([127, 0, 0, 1]);
        for _ in 0..3 {
            assert!(limiter.check(ip, "a@example.com").is_ok());
        }
        match limiter.check(ip, "A@example.com") {
            Err(AppError::RateLimited { retry_after }) => assert!(retry_after > Duration::ZERO),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        assert!(
            limiter.check(ip, "b@example.com").is_ok(),
            "another account has its own budget"
        );
    }

    #[test]
    fn budget_per_address() {
        let limiter = LoginLimiter::new(NonZeroU32::new(1).unwrap());
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
