//! The requests-per-minute limit: GCRA (the generic cell rate algorithm) with no burst, i.e.
//! attempts start at least `60 s / rpm` apart. Each caller reserves the next free slot under a
//! short lock and sleeps until it, so waiting costs one timer and no polling.
//!
//! Evenly spaced slots keep every window, not only each calendar minute, under the limit, at
//! the price of not using a provider's burst allowance. A caller that is cancelled while
//! sleeping leaves its slot unused; the limiter errs on the slow side.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    /// The theoretical arrival time of the next attempt: the earliest instant a new slot starts.
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter for `rpm` attempts a minute (`rpm` ≥ 1).
    pub(crate) fn per_minute(rpm: u32) -> Self {
        Self {
            interval: Duration::from_secs(60) / rpm.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this caller's slot.
    pub(crate) async fn until_ready(&self) {
        let slot = {
            // The lock guards two lines of arithmetic; a poisoned lock still holds a valid
            // instant.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn slots_are_evenly_spaced() {
        let limiter = RateLimiter::per_minute(600); // one per 100 ms
        let start = Instant::now();
        let mut starts = Vec::new();
        for _ in 0..4 {
            limiter.until_ready().await;
            starts.push(start.elapsed());
        }
        let ms: Vec<u128> = starts.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![0, 100, 200, 300]);
    }
}
