//! The wall clock that expiry decisions read: presigned URLs, abandoned uploads, sessions,
//! API keys, mailed links. One per [`AppState`](crate::app::AppState), shared by the parts
//! that decide expiry, so a test moves it forward ([`Clock::advance`], `testing` feature)
//! instead of sleeping until something expires. Timestamps the store writes for the record
//! (created/updated) keep reading the system clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SubsecRound, Utc};

#[derive(Debug, Default)]
pub struct Clock {
    /// Milliseconds added to the system time; only tests change it.
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        let now = Utc::now().trunc_subsecs(6);
        match self.offset_ms.load(Ordering::Relaxed) {
            0 => now,
            ms => now + chrono::Duration::milliseconds(ms),
        }
    }

    /// Moves this clock (not the system's) forward.
    #[cfg(any(test, feature = "testing"))]
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_only_this_clock() {
        let (a, b) = (Clock::default(), Clock::default());
        a.advance(std::time::Duration::from_secs(3600));
        let ahead = a.now() - b.now();
        assert!(ahead >= chrono::Duration::minutes(59) && ahead <= chrono::Duration::minutes(61), "{ahead}");
    }
}
