//! The event bus behind `GET /admin/v1/events`: tenant, retention and
//! registry changes, and a throughput tick every second. Subscribers that
//! fall behind skip events (and are told how many) rather than slowing writers.

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use crate::clock::{Millis, rfc3339};

/// One event, as sent on the SSE stream (`event:` = `kind`, `data:` = JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// `throughput.tick`, `tenant.changed`, `retention.purged`, `registry.changed`, …
    pub kind: &'static str,
    /// RFC 3339, from the core's clock.
    pub at: String,
    pub data: Value,
}

pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(1024);
        Self { tx }
    }
}

impl EventBus {
    pub fn publish(&self, kind: &'static str, now: Millis, data: Value) {
        // No subscriber is not an error.
        let _ = self.tx.send(Event {
            kind,
            at: rfc3339(now),
            data,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
