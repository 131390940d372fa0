//! Rate limits: password checks (sign-in and the current-password check of a password
//! change) per client and per account, and costly or sensitive requests (new thumbnail
//! decodes, content keys) per client.
//!
//! A client is its address's [`client_group`]: an IPv4 address, or the /64 of an IPv6
//! one, since a host picks any address of its /64 (SLAAC, privacy addresses) and would
//! otherwise get a fresh limit per address.
//!
//! Password checks: a client gets a burst of [`BURST`] attempts, then one more every
//! [`REFILL`] (GCRA, by governor); every attempt counts, right or wrong. An account gets
//! [`ACCOUNT_BURST`] failed attempts from any number of clients, then one more every
//! [`ACCOUNT_REFILL`]; only failures count, so an attacker can slow the account's
//! guessing down to that rate but cannot lock out an administrator who knows the
//! password for longer than one refill after the attacker stops.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts a client may make at once.
pub const BURST: u32 = 5;
/// One attempt more per this interval.
pub const REFILL: Duration = Duration::from_secs(12);
/// Failed attempts an account takes at once, from any clients.
pub const ACCOUNT_BURST: u32 = 10;
/// One failed attempt more per this interval.
pub const ACCOUNT_REFILL: Duration = Duration::from_secs(12);
/// Keys kept before the maps are pruned of clients back to a full burst.
const PRUNE_ABOVE: usize = 10_000;
/// An account is known by at most this many characters of its name as typed (user
/// names are at most 64), so what a client types cannot grow the map's memory.
const ACCOUNT_KEY_CHARS: usize = 64;

/// The key an account's failures are counted under.
fn account_key(account: &str) -> String {
    account.chars().take(ACCOUNT_KEY_CHARS).collect()
}

/// The address a client is limited by: an IPv4 address (IPv4-mapped IPv6 included), or
/// the /64 prefix of an IPv6 address.
pub fn client_group(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Why an attempt was refused, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// This client has used its attempts.
    Client(Duration),
    /// This account has had too many failed attempts.
    Account(Duration),
}

impl Refused {
    /// How long until the next attempt is allowed.
    pub fn wait(self) -> Duration {
        match self {
            Refused::Client(d) | Refused::Account(d) => d,
        }
    }

    /// A sentence for people.
    pub fn message(self) -> String {
        let secs = self.wait().as_secs().max(1);
        match self {
            Refused::Client(_) => {
                format!(
                    "Too many password attempts from your address. Try again in {secs} seconds."
                )
            }
            Refused::Account(_) => {
                format!("Too many wrong passwords for this account. Try again in {secs} seconds.")
            }
        }
    }
}

fn quota(period: Duration, burst: u32) -> Quota {
    Quota::with_period(period)
        .unwrap_or_else(|| unreachable!("the period is not zero"))
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// Password attempts per client and failures per account.
pub struct SignInLimiter {
    clients: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    /// Per account: the theoretical arrival time of its next failure (GCRA), kept by
    /// hand because only failures count, and an attempt must be refused before the
    /// password is checked, which governor cannot do without taking a cell.
    accounts: Mutex<HashMap<String, Instant>>,
}

impl Default for SignInLimiter {
    fn default() -> Self {
        SignInLimiter {
            clients: DefaultKeyedRateLimiter::keyed(quota(REFILL, BURST)),
            clock: DefaultClock::default(),
            accounts: Mutex::default(),
        }
    }
}

impl SignInLimiter {
    /// Counts an attempt from `client` on `account` (a user name as typed), before the
    /// password is checked.
    ///
    /// # Errors
    /// [`Refused`], with the wait, when the client or the account is over its limit.
    pub fn attempt(&self, client: IpAddr, account: &str) -> Result<(), Refused> {
        if self.clients.len() > PRUNE_ABOVE {
            self.clients.retain_recent();
        }
        self.clients
            .check_key(&client_group(client))
            .map_err(|not_until| Refused::Client(not_until.wait_time_from(self.clock.now())))?;
        let now = Instant::now();
        let accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        match accounts.get(&account_key(account)) {
            Some(tat) if *tat > now + ACCOUNT_REFILL * (ACCOUNT_BURST - 1) => Err(
                Refused::Account(*tat - now - ACCOUNT_REFILL * (ACCOUNT_BURST - 1)),
            ),
            _ => Ok(()),
        }
    }

    /// Counts a failed attempt on `account`.
    pub fn failed(&self, account: &str) {
        let now = Instant::now();
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.len() > PRUNE_ABOVE {
            accounts.retain(|_, tat| *tat > now);
        }
        let tat = accounts.entry(account_key(account)).or_insert(now);
        *tat = (*tat).max(now) + ACCOUNT_REFILL;
    }
}

/// A per-client rate limit of something costly, by [`client_group`].
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl ClientLimiter {
    /// New thumbnail decodes: a burst of 30 (a dashboard, a stream page's timeline),
    /// then one a second (about 4 % of a core, decoding 1080p).
    pub fn thumbnails() -> ClientLimiter {
        ClientLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota(Duration::from_secs(1), 30)),
            clock: DefaultClock::default(),
        }
    }

    /// Content key requests: a burst of 60 (a player's renditions and a page reloaded
    /// a few times), then one a second; a player asks once per key and rendition.
    pub fn keys() -> ClientLimiter {
        ClientLimiter {
            limiter: DefaultKeyedRateLimiter::keyed(quota(Duration::from_secs(1), 60)),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one use by `client`.
    ///
    /// # Errors
    /// How long until the next use is allowed.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client_group(client))
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
            l.attempt(a, "admin").expect("within the burst");
        }
        let wait = l.attempt(a, "admin").expect_err("over the burst").wait();
        assert!(wait > Duration::ZERO && wait <= REFILL, "{wait:?}");
        l.attempt(b, "admin")
            .expect("another client is not affected");
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let ip = |s: &str| -> IpAddr { s.parse().expect("ip") };
        assert_eq!(
            client_group(ip("2001:db8:1:2:aaaa::1")),
            client_group(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            client_group(ip("2001:db8:1:2::1")),
            client_group(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_group(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        let l = SignInLimiter::default();
        for i in 0..BURST {
            l.attempt(ip(&format!("2001:db8::{i:x}")), &format!("u{i}"))
                .expect("within the burst");
        }
        assert!(
            l.attempt(ip("2001:db8::ffff"), "another").is_err(),
            "a new address of the same /64 got a new burst"
        );
    }

    #[test]
    fn only_failures_count_against_an_account() {
        let l = SignInLimiter::default();
        let client = |i: u32| IpAddr::from([198, 51, 100, i as u8]);
        for i in 0..ACCOUNT_BURST {
            l.attempt(client(i), "admin")
                .expect("under the account's limit");
            l.failed("admin");
        }
        let r = l
            .attempt(client(99), "admin")
            .expect_err("over the account's limit");
        assert!(matches!(r, Refused::Account(_)), "{r:?}");
        assert!(r.wait() <= ACCOUNT_REFILL, "{r:?}");
        l.attempt(client(98), "other")
            .expect("another account is not affected");
        // Successes never count.
        let l = SignInLimiter::default();
        for i in 0..(ACCOUNT_BURST * 3) {
            l.attempt(client(i), "admin").expect("right passwords only");
        }
    }
}
