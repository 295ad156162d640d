//! Per-client token-request rate limit: a token bucket per client id, so that one client (a
//! misbehaving integration fetching a token per call, say) cannot take the token service, or
//! the cluster's token ledger it writes to once per request, from the others.
//!
//! A client's bucket holds up to `burst` requests and refills at `per_s`; it is charged only
//! after the client's assertion has verified, so nobody can empty another client's bucket with
//! forged assertions. The limit is per frontend instance (N instances behind a load balancer
//! allow N times as much; the ledger's cost per request stays one write). At most
//! `clients_max` buckets are kept: when full, buckets that have refilled completely (idle
//! clients) are dropped first, and a new client is refused only when every bucket is in use.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most clients with a bucket (registered clients only reach it).
pub const RATE_CLIENTS_MAX: usize = 100_000;

/// Per-client token buckets.
#[derive(Debug)]
pub struct ClientRates {
    per_s: f64,
    burst: f64,
    clients_max: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant, per_s: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * per_s).min(burst)
    }
}

impl ClientRates {
    /// `per_s` requests per second per client with bursts of `burst` (0 `per_s`: no limit).
    pub fn new(per_s: u32, burst: u32, clients_max: usize) -> ClientRates {
        ClientRates {
            per_s: f64::from(per_s),
            burst: f64::from(burst.max(1)),
            clients_max: clients_max.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Charges one request of `client` at `now`; `Err(wait)` when its bucket is empty (or no
    /// bucket can be had), with how long until one request is allowed again.
    pub fn take(&self, client: &str, now: Instant) -> Result<(), Duration> {
        if self.per_s <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(client) && buckets.len() >= self.clients_max {
            let (per_s, burst) = (self.per_s, self.burst);
            buckets.retain(|_, b| b.refilled(now, per_s, burst) < burst);
            if buckets.len() >= self.clients_max {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = bucket.refilled(now, self.per_s, self.burst);
        debug_assert!((0.0..=self.burst).contains(&tokens));
        if tokens < 1.0 {
            *bucket = Bucket { tokens, at: now };
            return Err(Duration::from_secs_f64((1.0 - tokens) / self.per_s));
        }
        *bucket = Bucket {
            tokens: tokens - 1.0,
            at: now,
        };
        Ok(())
    }

    /// Clients with a bucket (tests, metrics).
    pub fn clients(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate_per_client() {
        let rates = ClientRates::new(10, 3, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(rates.take("a", t0).is_ok());
        }
        let wait = rates.take("a", t0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another client is not affected.
        assert!(rates.take("b", t0).is_ok());
        // 100 ms later one more request of a.
        let t1 = t0 + Duration::from_millis(100);
        assert!(rates.take("a", t1).is_ok());
        assert!(rates.take("a", t1).is_err());
        // Idle for long, it has its whole burst again, not more.
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(rates.take("a", t2).is_ok());
        }
        assert!(rates.take("a", t2).is_err());
    }

    #[test]
    fn the_client_map_is_bounded_and_drops_idle_clients_first() {
        let rates = ClientRates::new(1, 2, 2);
        let t0 = Instant::now();
        assert!(rates.take("a", t0).is_ok());
        assert!(rates.take("b", t0).is_ok());
        // Both busy: a third client waits.
        assert!(rates.take("c", t0).is_err());
        assert_eq!(rates.clients(), 2);
        // Once a and b have refilled, c gets a bucket in their place.
        let later = t0 + Duration::from_secs(5);
        assert!(rates.take("c", later).is_ok());
        assert!(rates.clients() <= 2);
    }

    #[test]
    fn zero_means_no_limit() {
        let rates = ClientRates::new(0, 1, 1);
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert!(rates.take("a", t0).is_ok());
        }
        assert_eq!(rates.clients(), 0);
    }
}
