//! Sign-in rate limiting per client address (GCRA, by governor): a burst of
//! [`BURST`] attempts, then one more every [`REFILL`]. Every attempt counts, right or
//! wrong, so guessing is slow whatever the answers.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

/// Attempts allowed at once.
pub const BURST: u32 = 5;
/// One attempt more per this interval.
pub const REFILL: Duration = Duration::from_secs(12);

/// Sign-in attempts per client address.
pub struct SignInLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        let burst = NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(REFILL)
            .unwrap_or_else(|| unreachable!("REFILL is not zero"))
            .allow_burst(burst);
        SignInLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
        }
    }
}

impl SignInLimiter {
    /// Counts an attempt from `client`: `Ok` when allowed, or how long until the next
    /// one is.
    ///
    /// # Errors
    /// The wait, when `client` has used its attempts.
    pub fn attempt(&self, client: IpAddr) -> Result<(), Duration> {
        // Forget clients that are back to a full burst, so the map stays small.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_waits_per_client() {
        let l = SignInLimiter::default();
        let (a, b): (IpAddr, IpAddr) =
            ("192.0.2.1".parse().expect("ip"), "::1".parse().expect("ip"));
        for _ in 0..BURST {
            l.attempt(a).expect("within the burst");
        }
        let wait = l.attempt(a).expect_err("over the burst");
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        l.attempt(b).expect("another client is not affected");
    }
}
