//! The event stream task: subscribes to `GET /admin/v1/events`, forwards
//! each event, turns `throughput.tick` into the overview, and tells the
//! poller what changed. A stream silent for [`SILENCE`] is taken as dead
//! (the core ticks every second), so a core that vanished without closing
//! the socket is noticed. Reconnects with exponential backoff, forever.

use std::time::Duration;

use c24_api::admin::events::kinds;
use c24_api::admin::overview::Overview;
use c24_api::client::Client;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::{Fingerprint, Hint, SourceMsg, backoff};

/// No event for this long means the stream is dead.
pub const SILENCE: Duration = Duration::from_secs(5);
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

pub async fn run(
    client: Client,
    tx: mpsc::UnboundedSender<SourceMsg>,
    hints: mpsc::UnboundedSender<Hint>,
    mut stop: watch::Receiver<bool>,
) {
    let mut attempt: u32 = 0;
    loop {
        let connected = tokio::select! {
            r = client.events() => r,
            _ = stop.changed() => return,
        };
        match connected {
            Ok(stream) => {
                attempt = 0;
                let _ = tx.send(SourceMsg::StreamUp(true));
                let _ = hints.send(Hint::StreamUp(true));
                let mut stream = Box::pin(stream);
                loop {
                    let next = tokio::select! {
                        n = tokio::time::timeout(SILENCE, stream.next()) => n,
                        _ = stop.changed() => return,
                    };
                    let ev = match next {
                        Ok(Some(Ok(ev))) => ev,
                        Ok(Some(Err(e))) => {
                            tracing::debug!(error = %e, "event stream broke");
                            break;
                        }
                        Ok(None) => break,
                        Err(_) => {
                            tracing::debug!("event stream silent; reconnecting");
                            break;
                        }
                    };
                    match ev.kind.as_str() {
                        kinds::THROUGHPUT_TICK => {
                            if let Ok(o) = serde_json::from_value::<Overview>(ev.data.clone()) {
                                let _ = hints.send(Hint::Tick(Fingerprint::of(&o)));
                                let _ = tx.send(SourceMsg::Overview(Box::new(o)));
                            }
                        }
                        kinds::TENANT_CHANGED => {
                            let _ = hints.send(Hint::TenantChanged);
                        }
                        kinds::REGISTRY_CHANGED => {
                            let _ = hints.send(Hint::RegistryChanged);
                        }
                        kinds::DSR_CHANGED => {
                            let _ = hints.send(Hint::DsrChanged);
                        }
                        kinds::INCIDENT_CHANGED => {
                            let _ = hints.send(Hint::IncidentChanged);
                        }
                        kinds::CONSENT_CHANGED => {
                            let _ = hints.send(Hint::ConsentChanged);
                        }
                        kinds::RETENTION_PURGED => {
                            let _ = hints.send(Hint::RetentionChanged);
                            let _ = hints.send(Hint::RegistryChanged);
                        }
                        kinds::CLOCK_ADVANCED => {
                            let _ = hints.send(Hint::RetentionChanged);
                            let _ = hints.send(Hint::RegistryChanged);
                            let _ = hints.send(Hint::DsrChanged);
                            let _ = hints.send(Hint::IncidentChanged);
                        }
                        kinds::LAGGED => {
                            // Missed events: treat everything as changed.
                            let _ = hints.send(Hint::TenantChanged);
                            let _ = hints.send(Hint::RegistryChanged);
                            let _ = hints.send(Hint::RetentionChanged);
                            let _ = hints.send(Hint::DsrChanged);
                            let _ = hints.send(Hint::IncidentChanged);
                            let _ = hints.send(Hint::ConsentChanged);
                        }
                        _ => {}
                    }
                    if tx.send(SourceMsg::Event(Box::new(ev))).is_err() {
                        return;
                    }
                }
                let _ = tx.send(SourceMsg::StreamUp(false));
                let _ = hints.send(Hint::StreamUp(false));
            }
            Err(e) => {
                tracing::debug!(error = %e, "event stream unavailable");
            }
        }
        attempt = attempt.saturating_add(1);
        let wait = backoff(BACKOFF_BASE, attempt, BACKOFF_MAX);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}
