//! The event stream (`GET /admin/v1/events`, Server-Sent Events): each SSE
//! `event:` is [`Event::kind`], each `data:` one [`Event`] as JSON.

use serde::{Deserialize, Serialize};

/// Kinds of event the chat core sends.
pub mod kinds {
    /// Every second: the platform overview (`data` is an `Overview`).
    pub const THROUGHPUT_TICK: &str = "throughput.tick";
    /// A tenant was created or changed lifecycle state.
    pub const TENANT_CHANGED: &str = "tenant.changed";
    /// A purge run finished (`data` is a `PurgeRun`).
    pub const RETENTION_PURGED: &str = "retention.purged";
    /// A sub-processor entry was announced, changed, objected to, took effect or retired.
    pub const REGISTRY_CHANGED: &str = "registry.changed";
    /// A data-subject request was filed, extended, completed, or its export fetched.
    pub const DSR_CHANGED: &str = "dsr.changed";
    /// A breach was recorded, or a notification of it.
    pub const INCIDENT_CHANGED: &str = "incident.changed";
    /// A consent was recorded or withdrawn.
    pub const CONSENT_CHANGED: &str = "consent.changed";
    /// The dev clock moved forward.
    pub const CLOCK_ADVANCED: &str = "clock.advanced";
    /// The subscriber fell behind; `data` says how many events it missed.
    pub const LAGGED: &str = "lagged";
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub kind: String,
    /// RFC 3339, by the chat core's clock.
    pub at: String,
    /// Kind-specific: the `Overview` for `throughput.tick`, a `PurgeRun`
    /// for `retention.purged`, a small object for the others.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}
