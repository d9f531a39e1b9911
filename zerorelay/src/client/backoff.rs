//! Reconnect delays: exponential backoff with full jitter.
//!
//! Attempt `n` (from 1) waits a uniformly random time in
//! `[0, min(cap, base * 2^(n-1))]` ("full jitter"), which spreads a crowd of
//! clients reconnecting after a server restart instead of synchronising them.

use std::time::Duration;

/// A small deterministic PRNG (SplitMix64): seeded from the OS in production
/// and fixed in tests, so that the engine stays deterministic.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with this seed.
    pub fn seeded(seed: u64) -> Self {
        Rng(seed)
    }

    /// A generator seeded from the operating system.
    pub fn from_os() -> Self {
        let mut b = [0u8; 8];
        getrandom::fill(&mut b).expect("the operating system's random source is available");
        Rng(u64::from_le_bytes(b))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    pub fn below_or_eq(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        self.next_u64() % (max + 1)
    }
}

/// The backoff policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first delay.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The ceiling for attempt `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        let ms = (self.base.as_millis() as u64).saturating_mul(1u64 << shift);
        Duration::from_millis(ms.min(self.cap.as_millis() as u64))
    }

    /// A random delay for attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32, rng: &mut Rng) -> Duration {
        Duration::from_millis(rng.below_or_eq(self.ceiling(attempt).as_millis() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
        };
        let c: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(c, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b.ceiling(1000).as_millis(), 1000, "no overflow");
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        };
        let mut rng = Rng::seeded(7);
        let d: Vec<Duration> = (0..200).map(|_| b.delay(3, &mut rng)).collect();
        assert!(d.iter().all(|d| *d <= Duration::from_millis(400)));
        let distinct: std::collections::HashSet<_> = d.iter().collect();
        assert!(distinct.len() > 50, "full jitter spreads the delays");
        assert!(d.iter().any(|d| *d < Duration::from_millis(100)));
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let b = Backoff {
            base: Duration::from_millis(50),
            cap: Duration::from_secs(1),
        };
        let (mut r1, mut r2) = (Rng::seeded(1), Rng::seeded(1));
        for n in 1..10 {
            assert_eq!(b.delay(n, &mut r1), b.delay(n, &mut r2));
        }
    }
}
