//! Per-connection input policing: a token-bucket rate limit and an abuse
//! counter that turns repeated refusals into a policy close.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, at most `burst` stored.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        RateLimiter {
            rate: f64::from(rate_per_sec),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: now,
        }
    }

    /// Takes `cost` tokens after the fact (work a frame turned out to
    /// cause): the bucket may go into debt, down to one burst below empty,
    /// and later frames are refused until it refills.
    pub fn charge(&mut self, cost: f64) {
        self.tokens = (self.tokens - cost).max(-self.burst);
    }

    /// Takes one token; `false` when the bucket is empty.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Counts refused frames in a sliding ten-second window.
#[derive(Debug)]
pub struct Strikes {
    limit: u32,
    count: u32,
    window_start: Instant,
}

/// The abuse window.
pub const STRIKE_WINDOW: Duration = Duration::from_secs(10);

impl Strikes {
    /// No strikes yet.
    pub fn new(limit: u32, now: Instant) -> Self {
        Strikes {
            limit,
            count: 0,
            window_start: now,
        }
    }

    /// Records one refusal; `true` when the connection has now had too many.
    pub fn strike(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) > STRIKE_WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        self.count >= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_refills_at_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, 3, t0);
        assert!(r.allow(t0) && r.allow(t0) && r.allow(t0));
        assert!(!r.allow(t0));
        assert!(r.allow(t0 + Duration::from_millis(100)));
        assert!(!r.allow(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn a_charge_puts_the_bucket_in_debt_until_it_refills() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10, 10, t0);
        r.charge(15.0);
        assert!(!r.allow(t0));
        assert!(!r.allow(t0 + Duration::from_millis(500)));
        assert!(r.allow(t0 + Duration::from_millis(700)));
    }

    #[test]
    fn strikes_reset_after_the_window() {
        let t0 = Instant::now();
        let mut s = Strikes::new(3, t0);
        assert!(!s.strike(t0));
        assert!(!s.strike(t0));
        assert!(!s.strike(t0 + STRIKE_WINDOW * 2));
        assert!(!s.strike(t0 + STRIKE_WINDOW * 2));
        assert!(s.strike(t0 + STRIKE_WINDOW * 2));
    }
}
