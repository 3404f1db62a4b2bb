//! The one retry delay: `base × 2^(attempt−1)`, capped, plus up to a quarter of jitter so
//! retries of many callers spread out. Used by task retries (a due time in the queue) and
//! provider HTTP retries (a sleep).

use std::time::Duration;

/// The delay before retry number `attempt` (1 for the first retry).
pub fn delay(base_ms: u64, cap_ms: u64, attempt: u32) -> Duration {
    let delay = base_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(20)).min(cap_ms);
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    let jitter = u64::from(u16::from_le_bytes(jitter)) * (delay / 4 + 1) / u64::from(u16::MAX);
    Duration::from_millis(delay + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_with_bounded_jitter() {
        for (attempt, expected) in [(1, 500), (2, 1000), (3, 2000), (7, 30_000), (40, 30_000)] {
            let d = delay(500, 30_000, attempt).as_millis() as u64;
            assert!(d >= expected && d <= expected + expected / 4 + 1, "attempt {attempt}: {d} ms");
        }
        assert!(delay(0, 10, 3) <= Duration::from_millis(1), "a zero base stays (almost) zero");
    }
}
