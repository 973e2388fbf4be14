//! Randomness, in one place: secret bytes from the operating system (tokens, salts,
//! nonces, keys) and the cheap spread that keeps a fleet from acting in step (poll
//! intervals, retry waits). Nothing else in the crate reaches for a generator.

use argon2::password_hash::rand_core::{OsRng, RngCore};

pub use argon2::password_hash::rand_core::OsRng as SecureRng;

/// Fills `bytes` from the operating system's CSPRNG.
pub fn fill(bytes: &mut [u8]) {
    OsRng.fill_bytes(bytes);
}

/// `N` bytes from the operating system's CSPRNG.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    fill(&mut bytes);
    bytes
}

/// A factor from 0.75 to 1.25 that spreads retries and backoffs apart.
pub fn spread() -> f64 {
    let [a, b] = bytes::<2>();
    0.75 + f64::from(u16::from_le_bytes([a, b])) / f64::from(u16::MAX) / 2.0
}

thread_local! {
    /// A xorshift generator per thread, seeded from the operating system once: a
    /// spread needs no secrecy, and a system call per poll would cost more than the
    /// rest of the answer.
    static FAST: std::cell::Cell<u64> = std::cell::Cell::new(OsRng.next_u64() | 1);
}

/// A fast, non-secret random number, for spreading things out on hot paths.
pub fn fast_u64() -> u64 {
    FAST.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spread_stays_within_a_quarter_and_varies() {
        let seen: Vec<f64> = (0..1000).map(|_| spread()).collect();
        assert!(seen.iter().all(|f| (0.75..=1.25).contains(f)), "{seen:?}");
        let distinct: std::collections::HashSet<u64> = (0..1000).map(|_| fast_u64()).collect();
        assert!(distinct.len() > 990);
        assert_ne!(bytes::<16>(), bytes::<16>());
    }
}
