//! Background data collection: tasks that talk to the core and send what
//! they got to the UI task, which applies it to the [`crate::store::Store`].
//! Nothing here is ever awaited by drawing.
//!
//! - [`sse`]: the event stream (`GET /admin/v1/events`): the overview every
//!   second and every change as it happens; reconnects with backoff.
//! - [`poll`]: everything the stream does not carry (tenants, throughput
//!   series, retention, registry, audit, the compliance registers), fetched only when a hint or the
//!   feed's interval says it may have changed; fetches the overview itself
//!   while the stream is down.
//! - [`write`]: the `--write` actions, each one request with its outcome.

pub mod poll;
pub mod sse;
pub mod write;

use std::time::Duration;

use c24_api::admin::audit::AuditEntry;
use c24_api::admin::consents::Consent;
use c24_api::admin::dsr::Dsr;
use c24_api::admin::events::Event;
use c24_api::admin::incidents::Incident;
use c24_api::admin::overview::Overview;
use c24_api::admin::retention::RetentionReport;
use c24_api::admin::subprocessors::RegistryList;
use c24_api::admin::throughput::Throughput;
use c24_api::client::{Client, ClientError};
use tokio::sync::{mpsc, watch};

use crate::store::{DetailConversations, Feed, Outcome, PollState, TenantRecord};

/// What a background task sends to the UI task.
#[derive(Debug)]
pub enum SourceMsg {
    StreamUp(bool),
    Poll(PollState),
    Overview(Box<Overview>),
    Throughput(Box<Throughput>),
    /// One page of the tenant list; `first` starts a fetch, `last` ends it.
    TenantsPage {
        records: Vec<TenantRecord>,
        first: bool,
        last: bool,
    },
    /// No tenant has traffic and nothing changed since the last list.
    TenantsIdle,
    /// The focused tenant, its throughput and its newest conversations
    /// (`Unavailable` when the core lacks that route).
    Detail(Box<TenantRecord>, Box<Throughput>, DetailConversations),
    Retention(Box<RetentionReport>),
    Registry(Box<RegistryList>),
    Audit(Vec<AuditEntry>),
    /// Open data-subject requests of every tenant fetched; `open` counts
    /// them over all pages; `failed` names tenants that could not be fetched.
    Dsrs {
        items: Vec<Dsr>,
        open: usize,
        failed: Option<String>,
    },
    Incidents(Vec<Incident>),
    /// Consent records with a withdrawal, of every tenant fetched.
    Consents {
        items: Vec<Consent>,
        withdrawals: u64,
        failed: Option<String>,
    },
    Event(Box<Event>),
    FeedError(Feed, String),
    Outcome(Outcome),
}

/// What the UI asks of the poller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Follow this tenant's detail (or none).
    Focus(Option<String>),
    /// Fetch everything on the next round, now.
    RefreshAll,
}

/// What the event stream tells the poller (so it fetches only what changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    StreamUp(bool),
    /// A tick's figures that say whether the tenant list may have changed.
    Tick(Fingerprint),
    TenantChanged,
    RegistryChanged,
    RetentionChanged,
    DsrChanged,
    IncidentChanged,
    ConsentChanged,
}

/// The overview figures whose change means the tenant list changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub messages_total: u64,
    pub tenants: [usize; 6],
}

impl Fingerprint {
    pub fn of(o: &Overview) -> Self {
        let t = &o.tenants;
        Self {
            messages_total: o.live.messages_total,
            tenants: [
                t.total,
                t.active,
                t.suspended,
                t.terminated,
                t.purged,
                t.without_dpa,
            ],
        }
    }
}

/// The running background tasks; dropping this stops them.
pub struct Sources {
    pub commands: mpsc::UnboundedSender<Command>,
    stop: watch::Sender<bool>,
}

impl Sources {
    /// Starts the event stream and the poller against `client`.
    pub fn spawn(client: Client, refresh: Duration, tx: mpsc::UnboundedSender<SourceMsg>) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (hint_tx, hint_rx) = mpsc::unbounded_channel();
        tokio::spawn(sse::run(
            client.clone(),
            tx.clone(),
            hint_tx,
            stop_rx.clone(),
        ));
        tokio::spawn(poll::run(
            poll::Poller::new(client, refresh, tx),
            cmd_rx,
            hint_rx,
            stop_rx,
        ));
        Self {
            commands: cmd_tx,
            stop,
        }
    }

    pub fn send(&self, c: Command) {
        let _ = self.commands.send(c);
    }
}

impl Drop for Sources {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Whether an error means the core could not be reached at all (as
/// opposed to the core answering with an error).
pub fn is_unreachable(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Transport(_) | ClientError::Stream(_) | ClientError::Timeout(_)
    )
}

/// A short text for an error, for a panel title or the status line.
pub fn describe(e: &ClientError) -> String {
    match e {
        ClientError::Api { status, code, .. } => format!("{status} {code}"),
        ClientError::Transport(t) if t.is_connect() => "connection refused".into(),
        ClientError::Transport(t) if t.is_timeout() => "timed out".into(),
        ClientError::Transport(_) => "transport error".into(),
        other => other.to_string(),
    }
}

/// Exponential backoff: `base`·2^(attempt-1), at most `max`.
pub fn backoff(base: Duration, attempt: u32, max: Duration) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    (base * factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Duration::from_millis(250);
        let max = Duration::from_secs(10);
        assert_eq!(backoff(b, 1, max), Duration::from_millis(250));
        assert_eq!(backoff(b, 2, max), Duration::from_millis(500));
        assert_eq!(backoff(b, 4, max), Duration::from_secs(2));
        assert_eq!(backoff(b, 30, max), max);
    }
}
