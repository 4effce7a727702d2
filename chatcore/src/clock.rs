//! The one injectable clock every deadline, retention and timestamp reads.
//!
//! Production uses [`SystemClock`]. `--dev-clock` and tests use
//! [`OffsetClock`], the system time plus an offset that can only move forward,
//! so a 30-day window can be shown in seconds.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> Millis;

    /// Moves the clock forward; `None` when this clock cannot be advanced.
    fn advance(&self, _ms: Millis) -> Option<Millis> {
        None
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.now_ms()).unwrap_or_default()
    }
}

/// Wall-clock time.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        Utc::now().timestamp_millis()
    }
}

/// Wall-clock time plus a forward-only offset.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: AtomicI64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> Millis {
        Utc::now().timestamp_millis() + self.offset_ms.load(Ordering::Relaxed)
    }

    fn advance(&self, ms: Millis) -> Option<Millis> {
        let ms = ms.max(0);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
        Some(self.now_ms())
    }
}

/// RFC 3339 (UTC, millisecond precision) for a millisecond timestamp.
pub fn rfc3339(ms: Millis) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_clock_moves_forward_only() {
        let c = OffsetClock::default();
        let before = c.now_ms();
        c.advance(31 * 86_400_000);
        assert!(c.now_ms() >= before + 31 * 86_400_000);
        c.advance(-1_000_000_000);
        assert!(c.now_ms() >= before + 31 * 86_400_000);
        assert!(SystemClock.advance(1).is_none());
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }
}
