//! What this node does about changes other nodes commit to a shared
//! database (PostgreSQL; see `store::postgres::notify`).
//!
//! - An agent reply stored by another node reaches the visitor sockets
//!   connected here: the sealed row is read and opened with the tenant's key
//!   (the event carries ids only), then pushed like a local reply.
//! - A tenant created or changed elsewhere (state, DPA, key destruction) is
//!   reloaded into this node's directory, so ingress here admits and refuses
//!   as there.
//! - What other nodes store, purge or erase moves this node's per-tenant
//!   usage counters too (the tenant listing's stored messages and bytes).
//!   After missed events (a listener reconnect) they are recounted.

use c24_api::webchat::{MsgNew, ServerFrame};
use tokio::sync::broadcast::error::RecvError;

use crate::http::AppState;
use crate::ingress;
use crate::store::ClusterEvent;
use crate::tenants;

/// Follows the store's cluster events, if it has any (one SQLite node has none).
pub fn spawn(state: AppState) {
    let Some(mut rx) = state.store.cluster_events() else {
        return;
    };
    tokio::spawn(async move {
        loop {
            match rx.recv().await {
                Ok(ClusterEvent::Outbound {
                    tenant_id,
                    conversation_id,
                    seq,
                }) => {
                    if let Err(e) = push_reply(&state, &tenant_id, &conversation_id, seq).await {
                        tracing::warn!(error = %e, "pushing another node's reply failed");
                    }
                }
                Ok(ClusterEvent::Tenant { tenant_id }) => {
                    reload_tenants(&state, Some(&tenant_id)).await;
                }
                Ok(ClusterEvent::Usage { deltas }) => {
                    for (tenant, messages, bytes, conversations) in deltas {
                        if let Some(t) = state.tenants.get(&tenant) {
                            t.usage.add(messages, bytes, conversations);
                        }
                    }
                }
                Ok(ClusterEvent::Resync) | Err(RecvError::Lagged(_)) => {
                    reload_tenants(&state, None).await;
                    recount_usage(&state).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
}

/// Sets every tenant's usage counters to what the database holds (a scan:
/// only after events were missed).
async fn recount_usage(state: &AppState) {
    let counts = match state.store.usage().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "recounting tenants' usage failed");
            return;
        }
    };
    let mut stored: std::collections::HashMap<String, (i64, i64, i64)> = counts
        .into_iter()
        .map(|(t, m, b, c)| (t, (m, b, c)))
        .collect();
    for t in state.tenants.all_unordered() {
        let (m, b, c) = stored.remove(&t.id).unwrap_or_default();
        let (m0, b0, c0) = t.usage.get();
        t.usage.add(m - m0, b - b0, c - c0);
    }
}

async fn push_reply(
    state: &AppState,
    tenant_id: &str,
    conversation_id: &str,
    seq: i64,
) -> Result<(), String> {
    if !state.hub.has_subscribers(conversation_id) {
        return Ok(());
    }
    let Some(tenant) = state.tenants.get(tenant_id) else {
        return Ok(());
    };
    let Some(cipher) = tenant.cipher() else {
        return Ok(());
    };
    let rows = state
        .store
        .messages(conversation_id, seq - 1, 1)
        .await
        .map_err(|e| e.to_string())?;
    let Some(m) = rows.into_iter().find(|m| m.seq == seq) else {
        // Erased or purged since.
        return Ok(());
    };
    let content =
        ingress::open_body(&cipher, tenant_id, &m.id, &m.body_ct).map_err(|e| e.to_string())?;
    let frame = ServerFrame::MsgNew(MsgNew {
        conversation_id: m.conversation_id.clone(),
        message_id: m.id,
        seq: m.seq,
        direction: m.direction,
        content,
        created_ts: m.received_at,
    });
    let text = serde_json::to_string(&frame).map_err(|e| e.to_string())?;
    state.hub.publish(&m.conversation_id, text.into());
    Ok(())
}

/// Brings the directory up to the database: new tenants are added, known
/// ones take the stored state (and lose a destroyed key).
async fn reload_tenants(state: &AppState, only: Option<&str>) {
    let records = match state.store.load_tenants().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reloading tenants after another node's change failed");
            return;
        }
    };
    for r in records.iter().filter(|r| only.is_none_or(|id| id == r.id)) {
        match state.tenants.get(&r.id) {
            Some(entry) => {
                if r.wrapped_dek.is_none() {
                    entry.drop_key();
                }
                entry.update(|s| {
                    s.status = if r.key_destroyed_at.is_some() {
                        "purged".to_string()
                    } else {
                        r.status.clone()
                    };
                    s.dpa_signed_at = r.dpa_signed_at;
                    s.terminated_at = r.terminated_at;
                    s.purge_after = r.purge_after;
                    s.key_destroyed_at = r.key_destroyed_at;
                });
                state.tenants.bump();
            }
            None => match tenants::restore(&state.kek, r, state.at_rest_encryption) {
                Ok(entry) => {
                    state
                        .tenants
                        .insert(entry, r.api_key_hash.clone(), r.widget_key_hash.clone());
                }
                Err(_) => tracing::warn!(
                    tenant = %r.id,
                    "another node's tenant does not open with this node's KEK"
                ),
            },
        }
    }
}
