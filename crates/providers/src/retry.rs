//! How long to wait before the next attempt: exponential backoff with full jitter, unless the
//! server said how long with `Retry-After`.
//!
//! Full jitter (a uniform wait between zero and the exponential bound) is the variant AWS's
//! "Exponential Backoff and Jitter" analysis found to spread retrying clients best. Which
//! failures are retried is `CallError::is_retryable`; this module only does time.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Backoff settings of a [`crate::Client`]. The defaults suit hosted APIs; tests use
/// milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Bound of the first wait; the bound doubles with every retry. Default 0.5 s.
    pub base: Duration,
    /// Largest bound. Default 30 s.
    pub cap: Duration,
    /// Longest `Retry-After` honoured; a longer one is shortened to this. Default 120 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the first retry): `Retry-After` when the
    /// server sent one, else a uniform random wait in `[0, min(cap, base * 2^retry)]`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max_retry_after);
        }
        let bound = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.min(30)))
            .min(self.cap);
        let bound_us = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=bound_us))
    }
}

/// Parses a `Retry-After` value: delay-seconds (a decimal is accepted too, as some servers send
/// one) or an HTTP date, which is turned into the time left from `now` (zero if it has passed).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        // Rejects negative, NaN and absurdly large values instead of panicking on them.
        return Duration::try_from_secs_f64(secs).ok();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 GMT
        let p = |v| parse_retry_after(v, now);
        assert_eq!(p("3"), Some(Duration::from_secs(3)));
        assert_eq!(p(" 0.25 "), Some(Duration::from_millis(250)));
        assert_eq!(
            p("Wed, 21 Oct 2015 07:28:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p("Wed, 21 Oct 2015 07:27:00 GMT"), Some(Duration::ZERO));
        assert_eq!(p("-1"), None);
        assert_eq!(p("1e300"), None);
        assert_eq!(p("soon"), None);
    }

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let policy = RetryPolicy {
            base: Duration::from_millis(10),
            cap: Duration::from_millis(40),
            max_retry_after: Duration::from_secs(5),
        };
        for retry in 0..40 {
            let bound = Duration::from_millis(10 * 2u64.pow(retry.min(2)));
            assert!(policy.delay(retry, None) <= bound.min(policy.cap));
        }
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(60))),
            Duration::from_secs(5)
        );
    }
}
