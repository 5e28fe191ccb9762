//! Retry policy of durable jobs: exponential backoff with a ceiling.

/// How many times a job is attempted before it is marked `failed`.
pub const MAX_ATTEMPTS: i32 = 5;

/// Seconds to wait before attempt `attempts + 1`, after `attempts` failures:
/// 2, 4, 8, 16 … capped at one hour.
pub fn backoff_seconds(attempts: i32) -> i64 {
    let exponent = attempts.clamp(1, 12) as u32;
    (1i64 << exponent).min(3600)
}

/// Seconds to wait before trying again a job that failed its `attempts`-th
/// attempt. A first attempt refused only because another transaction ran
/// at the same time (`transient`: a deadlock) is tried again at once; any
/// later failure waits its backoff, so that a job caught in lasting
/// contention does not use up its attempts within seconds.
pub fn retry_delay_seconds(attempts: i32, transient: bool) -> i64 {
    if transient && attempts <= 1 {
        0
    } else {
        backoff_seconds(attempts)
    }
}

/// Whether a job that failed its `attempts`-th attempt should be tried again.
pub fn should_retry(attempts: i32) -> bool {
    attempts < MAX_ATTEMPTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_seconds(1), 2);
        assert_eq!(backoff_seconds(2), 4);
        assert_eq!(backoff_seconds(5), 32);
        assert_eq!(backoff_seconds(40), 3600);
    }

    #[test]
    fn a_first_transient_failure_is_retried_at_once_and_later_ones_back_off() {
        assert_eq!(retry_delay_seconds(1, true), 0);
        assert_eq!(retry_delay_seconds(1, false), 2);
        assert_eq!(retry_delay_seconds(2, true), 4);
        assert_eq!(retry_delay_seconds(3, true), backoff_seconds(3));
    }

    #[test]
    fn jobs_are_retried_until_the_attempt_limit() {
        assert!(should_retry(1));
        assert!(should_retry(MAX_ATTEMPTS - 1));
        assert!(!should_retry(MAX_ATTEMPTS));
    }
}
