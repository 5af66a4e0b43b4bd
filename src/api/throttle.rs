//! Throttling of failed token requests, per app and per source address.
//!
//! Each app of the directory and each source address (an IPv6 address by its /64) has a
//! window: the first failure opens it, and once `limit` failures fall within it, every
//! token request of that app or from that address is refused with 429, a right secret
//! included, until the window ends. Failures for client ids the directory does not know
//! count against the address alone: there is no secret to guess behind them, and keeping
//! them would let a client fill the table with made-up names.
//!
//! Memory is bounded: apps are the directory's; addresses are at most
//! [`MAX_ADDRESSES`], purged of ended windows at most once per window, and addresses
//! beyond that share one window (they are throttled together). Only the token endpoint
//! takes this lock; requests with a token never do.
//!
//! Failures are logged (the app's client id when it is one of the directory's, the
//! address, never the secret), at most [`LOG_PER_SEC`] lines a second; what was left out
//! is counted in the next line.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::auth::Refused;

/// Addresses with a window of their own.
pub const MAX_ADDRESSES: usize = 16_384;
/// Log lines about failures, at most, per second.
pub const LOG_PER_SEC: u32 = 20;

#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimits {
    /// Failures of one app within a window that throttle it (0: never).
    pub per_client: u32,
    /// Failures from one address within a window that throttle it (0: never).
    pub per_address: u32,
    pub window: Duration,
}

/// An address as throttled: IPv4, or an IPv6 address's /64 (one host usually has a
/// whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddrKey {
    V4(u32),
    V6(u64),
    Unknown,
}

impl AddrKey {
    fn of(addr: Option<IpAddr>) -> AddrKey {
        match addr {
            Some(IpAddr::V4(a)) => AddrKey::V4(a.into()),
            Some(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(v4.into()),
                None => AddrKey::V6((u128::from(a) >> 64) as u64),
            },
            None => AddrKey::Unknown,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
    /// Requests refused while throttled, reported when the window ends.
    refused: u64,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            failures: 0,
            refused: 0,
        }
    }

    /// Seconds until the window ends, if it throttles at `now`.
    fn throttled(&self, limit: u32, window: Duration, now: Instant) -> Option<u64> {
        let end = self.start + window;
        (limit > 0 && self.failures >= limit && now < end).then(|| {
            let left = end - now;
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        })
    }

    /// Starts a new window when this one ended; returns the refusals of the old one.
    fn roll(&mut self, window: Duration, now: Instant) -> u64 {
        if now >= self.start + window {
            let refused = self.refused;
            *self = Window::new(now);
            refused
        } else {
            0
        }
    }
}

#[derive(Debug)]
struct State {
    clients: HashMap<String, Window>,
    addresses: HashMap<AddrKey, Window>,
    /// The window of the addresses that found the table full.
    overflow: Window,
    next_purge: Instant,
    log_second: Instant,
    logged: u32,
    unlogged: u64,
}

impl State {
    /// Logs a refused token request and what became throttled, within the log's budget
    /// of [`LOG_PER_SEC`] lines a second (never the secret).
    fn log_failure(
        &mut self,
        l: &ThrottleLimits,
        who: Asker<'_>,
        why: Refused,
        became: Vec<String>,
        now: Instant,
    ) {
        if now >= self.log_second + Duration::from_secs(1) {
            self.log_second = now;
            self.logged = 0;
        }
        if self.logged >= LOG_PER_SEC {
            self.unlogged += 1;
            return;
        }
        self.logged += 1;
        let unlogged = std::mem::take(&mut self.unlogged);
        if unlogged > 0 {
            tracing::warn!("{unlogged} more refused token requests were not logged (over {LOG_PER_SEC} a second)");
        }
        let addr = who.addr.map(|a| a.to_string()).unwrap_or_default();
        match (why, who.known_client) {
            (Refused::WrongSecret, Some(c)) => {
                tracing::warn!(client_id = c, addr, "token refused: wrong secret")
            }
            _ => tracing::warn!(addr, "token refused: unknown client_id"),
        }
        for what in became {
            let after = if what.starts_with("app") {
                l.per_client
            } else {
                l.per_address
            };
            tracing::warn!(
                "token requests of {what} throttled until {} s after its first failure, after {after} failures",
                l.window.as_secs()
            );
        }
    }
}

#[derive(Debug)]
pub struct Throttle {
    limits: ThrottleLimits,
    state: Mutex<State>,
}

/// Who asks for a token: the app (when the directory has it) and the source address.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    pub known_client: Option<&'a str>,
    pub addr: Option<IpAddr>,
}

impl Throttle {
    pub fn new(limits: ThrottleLimits) -> Throttle {
        let now = Instant::now();
        Throttle {
            limits,
            state: Mutex::new(State {
                clients: HashMap::new(),
                addresses: HashMap::new(),
                overflow: Window::new(now),
                next_purge: now,
                log_second: now,
                logged: 0,
                unlogged: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Seconds to wait when the app or the address is throttled at `now`.
    pub fn check(&self, who: Asker<'_>, now: Instant) -> Result<(), u64> {
        let l = self.limits;
        let mut st = self.lock();
        let mut wait = None;
        if let Some(w) = who.known_client.and_then(|c| st.clients.get_mut(c)) {
            if let Some(s) = w.throttled(l.per_client, l.window, now) {
                w.refused += 1;
                wait = Some(s);
            }
        }
        let key = AddrKey::of(who.addr);
        let st = &mut *st;
        let full = st.addresses.len() >= MAX_ADDRESSES;
        let w = match st.addresses.get_mut(&key) {
            Some(w) => Some(w),
            None if full => Some(&mut st.overflow),
            None => None,
        };
        if let Some(w) = w {
            if let Some(s) = w.throttled(l.per_address, l.window, now) {
                w.refused += 1;
                wait = Some(wait.map_or(s, |x: u64| x.max(s)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a refused token request against the app (when known) and the address.
    pub fn failed(&self, who: Asker<'_>, why: Refused, now: Instant) {
        let l = self.limits;
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut became = Vec::new();
        if let Some(c) = who.known_client {
            let w = st
                .clients
                .entry(c.to_string())
                .or_insert_with(|| Window::new(now));
            let refused = w.roll(l.window, now);
            if refused > 0 {
                tracing::info!(
                    client_id = c,
                    refused,
                    "token requests refused while the app was throttled"
                );
            }
            w.failures += 1;
            if l.per_client > 0 && w.failures == l.per_client {
                became.push(format!("app {c}"));
            }
        }
        let key = AddrKey::of(who.addr);
        if !st.addresses.contains_key(&key)
            && st.addresses.len() >= MAX_ADDRESSES
            && now >= st.next_purge
        {
            let window = l.window;
            st.addresses.retain(|_, w| now < w.start + window);
            st.next_purge = now + window;
        }
        let w = if st.addresses.len() < MAX_ADDRESSES || st.addresses.contains_key(&key) {
            st.addresses.entry(key).or_insert_with(|| Window::new(now))
        } else {
            &mut st.overflow
        };
        let refused = w.roll(l.window, now);
        if refused > 0 {
            tracing::info!(addr = ?who.addr, refused, "token requests refused while the address was throttled");
        }
        w.failures += 1;
        if l.per_address > 0 && w.failures == l.per_address {
            became.push(match who.addr {
                Some(a) => format!("address {a}"),
                None => "requests without an address".into(),
            });
        }

        st.log_failure(&l, who, why, became, now);
    }
    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.lock().addresses.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ThrottleLimits = ThrottleLimits {
        per_client: 3,
        per_address: 5,
        window: Duration::from_secs(60),
    };

    fn asker<'a>(client: Option<&'a str>, addr: &str) -> Asker<'a> {
        Asker {
            known_client: client,
            addr: Some(addr.parse().unwrap()),
        }
    }

    #[test]
    fn an_app_is_throttled_after_its_failures_until_the_window_ends() {
        let t = Throttle::new(LIMITS);
        let now = Instant::now();
        // From three addresses, so the app's limit is what throttles.
        for (i, a) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
            assert_eq!(t.check(asker(Some("alice-app"), a), now), Ok(()));
            t.failed(
                asker(Some("alice-app"), a),
                Refused::WrongSecret,
                now + Duration::from_secs(i as u64),
            );
        }
        let later = now + Duration::from_secs(10);
        assert_eq!(
            t.check(asker(Some("alice-app"), "10.0.0.9"), later),
            Err(50)
        );
        // Another app from the same addresses is not.
        assert_eq!(t.check(asker(Some("bob-app"), "10.0.0.1"), later), Ok(()));
        assert_eq!(
            t.check(
                asker(Some("alice-app"), "10.0.0.9"),
                now + Duration::from_secs(60)
            ),
            Ok(())
        );
    }

    #[test]
    fn an_address_is_throttled_for_unknown_clients_too() {
        let t = Throttle::new(LIMITS);
        let now = Instant::now();
        for _ in 0..5 {
            t.failed(asker(None, "192.0.2.7"), Refused::UnknownClient, now);
        }
        assert_eq!(t.check(asker(Some("alice-app"), "192.0.2.7"), now), Err(60));
        assert_eq!(t.check(asker(Some("alice-app"), "192.0.2.8"), now), Ok(()));
        // An IPv6 host is its /64.
        for _ in 0..5 {
            t.failed(asker(None, "2001:db8:1:2::1"), Refused::UnknownClient, now);
        }
        assert!(t.check(asker(None, "2001:db8:1:2::ffff"), now).is_err());
        assert!(t.check(asker(None, "2001:db8:1:3::1"), now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_when_addresses_are_sprayed() {
        let t = Throttle::new(LIMITS);
        let now = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 5_000) {
            let a = IpAddr::V4((0x0a00_0000 + i).into());
            let who = Asker {
                known_client: None,
                addr: Some(a),
            };
            t.failed(who, Refused::UnknownClient, now);
        }
        assert_eq!(t.addresses(), MAX_ADDRESSES);
        // The addresses beyond the table share a window, which is now throttled.
        let newcomer = Asker {
            known_client: None,
            addr: Some("172.16.0.1".parse().unwrap()),
        };
        assert!(t.check(newcomer, now).is_err());
        // Once the windows end, the table is purged and newcomers get their own.
        let later = now + Duration::from_secs(61);
        t.failed(newcomer, Refused::UnknownClient, later);
        assert_eq!(t.addresses(), 1);
        assert_eq!(t.check(newcomer, later), Ok(()));
    }
}
