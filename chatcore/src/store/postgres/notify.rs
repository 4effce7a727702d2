//! Cross-node events over PostgreSQL `LISTEN/NOTIFY`.
//!
//! A writer queues `pg_notify` inside the transaction of the op it is about,
//! so other nodes hear of a change only once it is committed (and never of
//! an op rolled back). Payloads carry ids only, never message content: a node
//! that needs the reply reads its sealed row. Each node listens on one
//! dedicated connection (`application_name` [`LISTENER_APPLICATION_NAME`]),
//! reconnecting after a loss; events missed meanwhile are answered by a
//! [`ClusterEvent::Resync`] (after which the cluster layer recounts, and
//! pushes the replies committed meanwhile to the visitors connected here).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot, watch};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{AsyncMessage, Socket};

use crate::store::ClusterEvent;

/// The channel every node listens on.
pub const CHANNEL: &str = "c24_events";

#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    /// The node that committed it (its own events are ignored).
    node: String,
    #[serde(flatten)]
    event: Event,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Event {
    Outbound {
        tenant: String,
        conversation: String,
        seq: i64,
    },
    Tenant {
        tenant: String,
    },
    Usage {
        /// (tenant, messages, bytes, conversations).
        deltas: Vec<(String, i64, i64, i64)>,
        /// Traffic-trace messages added less purged (absent from a node
        /// that predates it: none).
        #[serde(default, skip_serializing_if = "is_zero")]
        trace: i64,
    },
    Compliance,
    Registry,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// Tenants per usage notification: keeps a payload far below PostgreSQL's
/// 8000-byte limit.
pub(crate) const USAGE_CHUNK: usize = 40;

/// The `pg_notify` payload for an event of `node`.
pub(crate) fn payload(node: &str, event: &ClusterEvent) -> Option<String> {
    let event = match event {
        ClusterEvent::Outbound {
            tenant_id,
            conversation_id,
            seq,
        } => Event::Outbound {
            tenant: tenant_id.clone(),
            conversation: conversation_id.clone(),
            seq: *seq,
        },
        ClusterEvent::Tenant { tenant_id } => Event::Tenant {
            tenant: tenant_id.clone(),
        },
        ClusterEvent::Usage { deltas, trace } => Event::Usage {
            deltas: deltas.clone(),
            trace: *trace,
        },
        ClusterEvent::Compliance => Event::Compliance,
        ClusterEvent::Registry => Event::Registry,
        ClusterEvent::Resync => return None,
    };
    serde_json::to_string(&Payload {
        node: node.to_string(),
        event,
    })
    .ok()
}

/// Another node's event, or `None` (this node's own, or unreadable).
fn parse(own_node: &str, text: &str) -> Option<ClusterEvent> {
    let p: Payload = match serde_json::from_str(text) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring an unreadable cluster event");
            return None;
        }
    };
    if p.node == own_node {
        return None;
    }
    Some(match p.event {
        Event::Outbound {
            tenant,
            conversation,
            seq,
        } => ClusterEvent::Outbound {
            tenant_id: tenant,
            conversation_id: conversation,
            seq,
        },
        Event::Tenant { tenant } => ClusterEvent::Tenant { tenant_id: tenant },
        Event::Usage { deltas, trace } => ClusterEvent::Usage { deltas, trace },
        Event::Compliance => ClusterEvent::Compliance,
        Event::Registry => ClusterEvent::Registry,
    })
}

const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The listener connection's `application_name`: an operator (or a test)
/// can tell it from the pool's in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "c24-listen";

/// Listens until `stop` turns true, forwarding other nodes' events to `tx`;
/// `ready` fires once the first LISTEN is in place.
pub(crate) async fn listen<T>(
    mut config: tokio_postgres::Config,
    tls: T,
    node: Arc<str>,
    tx: broadcast::Sender<ClusterEvent>,
    mut stop: watch::Receiver<bool>,
    ready: oneshot::Sender<()>,
) where
    T: MakeTlsConnect<Socket> + Clone,
    T::Stream: Send + 'static,
{
    config.application_name(LISTENER_APPLICATION_NAME);
    let mut ready = Some(ready);
    let mut first = true;
    while !*stop.borrow() {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                // The connection only makes progress while polled: LISTEN
                // is sent concurrently with reading its messages.
                let sql = format!("LISTEN {CHANNEL}");
                let listen = client.batch_execute(&sql);
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        r = &mut listen, if !listening => {
                            if let Err(e) = r {
                                tracing::warn!(error = %e, "LISTEN failed");
                                break;
                            }
                            listening = true;
                            if let Some(r) = ready.take() {
                                let _ = r.send(());
                            }
                            if !first {
                                let _ = tx.send(ClusterEvent::Resync);
                            }
                            first = false;
                        }
                        m = messages.next() => match m {
                            Some(Ok(AsyncMessage::Notification(n))) => {
                                if let Some(ev) = parse(&node, n.payload()) {
                                    let _ = tx.send(ev);
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "cluster event connection lost");
                                break;
                            }
                            None => break,
                        },
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the cluster event listener"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RECONNECT_AFTER) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_own_events_are_dropped() {
        let ev = ClusterEvent::Outbound {
            tenant_id: "t1".into(),
            conversation_id: "c1".into(),
            seq: 7,
        };
        let text = payload("node-a", &ev).unwrap();
        assert_eq!(parse("node-b", &text), Some(ev));
        assert_eq!(parse("node-a", &text), None);
        let t = ClusterEvent::Tenant {
            tenant_id: "t2".into(),
        };
        assert_eq!(parse("node-b", &payload("node-a", &t).unwrap()), Some(t));
        let u = ClusterEvent::Usage {
            deltas: vec![("t3".into(), 2, 40, 1), ("t4".into(), -5, -100, -1)],
            trace: -7,
        };
        assert_eq!(parse("node-b", &payload("node-a", &u).unwrap()), Some(u));
        for ev in [ClusterEvent::Compliance, ClusterEvent::Registry] {
            let text = payload("node-a", &ev).unwrap();
            assert_eq!(parse("node-b", &text), Some(ev));
        }
        assert_eq!(payload("node-a", &ClusterEvent::Resync), None);
        assert_eq!(parse("node-b", "not json"), None);
    }
}
