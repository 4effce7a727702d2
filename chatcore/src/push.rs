//! Fan-out of pushes to visitors' open web-chat sockets, by conversation.
//!
//! A socket subscribes to the conversations it sends in or resumes; an agent
//! reply is published once and delivered to each. A socket too slow to keep
//! up loses pushes (it can `resume`) rather than stalling the publisher.
//!
//! Each subscription remembers the highest seq the socket has had (from its
//! first ack or a resume, then from pushes): a push is delivered only above
//! it, so a socket never gets one message twice nor an older one after a
//! newer. Replies reach the hub through [`push_replies`], which first reads
//! the conversation's replies since the lowest mark: a reply stored here and
//! one another node stored just before it (its event still on the way), or
//! replies committed while this node missed events, are then pushed in seq
//! order rather than the earlier one being passed over.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use c24_api::webchat::{MsgNew, ServerFrame};
use tokio::sync::mpsc;

use crate::http::AppState;
use crate::ingress;

/// A serialised server frame.
pub type Push = std::sync::Arc<str>;

/// One socket following one conversation.
struct Subscriber {
    socket: u64,
    tx: mpsc::Sender<Push>,
    /// The highest seq this socket has had in the conversation.
    seen: i64,
}

#[derive(Default)]
pub struct PushHub {
    subs: Mutex<HashMap<String, Vec<Subscriber>>>,
    next_id: AtomicU64,
}

impl PushHub {
    /// A fresh id for a socket.
    pub fn socket_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Subscriber>>> {
        match self.subs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Follows the conversation on the socket, which has had it up to
    /// `seen` (its first ack's seq, a resume's `last_seq`). A socket already
    /// following it keeps its mark: a later ack must not pass over an agent
    /// reply committed before it whose push is still on its way.
    pub fn subscribe(
        &self,
        conversation_id: &str,
        socket: u64,
        tx: &mpsc::Sender<Push>,
        seen: i64,
    ) {
        let mut g = self.lock();
        let list = g.entry(conversation_id.to_string()).or_default();
        if !list.iter().any(|s| s.socket == socket) {
            list.push(Subscriber {
                socket,
                tx: tx.clone(),
                seen,
            });
        }
    }

    /// Holds the socket's pushes of the conversation back (while a resume
    /// reads its replay); gives what it had seen, for [`Self::mark_seen`].
    pub fn hold(&self, conversation_id: &str, socket: u64) -> i64 {
        let mut g = self.lock();
        match g
            .get_mut(conversation_id)
            .and_then(|list| list.iter_mut().find(|s| s.socket == socket))
        {
            Some(s) => std::mem::replace(&mut s.seen, i64::MAX),
            None => 0,
        }
    }

    /// Sets what the socket has had: after a [`Self::hold`], the replay's
    /// last seq (or what it had before, if more).
    pub fn set_seen(&self, conversation_id: &str, socket: u64, seen: i64) {
        let mut g = self.lock();
        if let Some(s) = g
            .get_mut(conversation_id)
            .and_then(|list| list.iter_mut().find(|s| s.socket == socket))
        {
            s.seen = seen;
        }
    }

    /// The socket has had everything up to `seen` (a resume's replay).
    pub fn mark_seen(&self, conversation_id: &str, socket: u64, seen: i64) {
        let mut g = self.lock();
        if let Some(s) = g
            .get_mut(conversation_id)
            .and_then(|list| list.iter_mut().find(|s| s.socket == socket))
        {
            s.seen = s.seen.max(seen);
        }
    }

    pub fn unsubscribe(&self, conversation_id: &str, socket: u64) {
        let mut g = self.lock();
        if let Some(list) = g.get_mut(conversation_id) {
            list.retain(|s| s.socket != socket);
            if list.is_empty() {
                g.remove(conversation_id);
            }
        }
    }

    /// Whether any socket of this node follows the conversation.
    pub fn has_subscribers(&self, conversation_id: &str) -> bool {
        self.lock().contains_key(conversation_id)
    }

    /// The lowest mark among the conversation's sockets, if any follows it.
    pub fn floor(&self, conversation_id: &str) -> Option<i64> {
        self.lock()
            .get(conversation_id)
            .and_then(|list| list.iter().map(|s| s.seen).min())
    }

    /// Every followed conversation, with the lowest mark among its sockets:
    /// what was committed after it may not have reached all of them.
    pub fn following(&self) -> Vec<(String, i64)> {
        self.lock()
            .iter()
            .filter_map(|(c, list)| Some((c.clone(), list.iter().map(|s| s.seen).min()?)))
            .collect()
    }

    /// Delivers message `seq` of the conversation to every subscribed socket
    /// that has not had it (nor a later one); returns how many took it.
    pub fn publish(&self, conversation_id: &str, seq: i64, frame: Push) -> usize {
        let mut g = self.lock();
        let Some(list) = g.get_mut(conversation_id) else {
            return 0;
        };
        let mut delivered = 0;
        for s in list.iter_mut().filter(|s| s.seen < seq) {
            if s.tx.try_send(frame.clone()).is_ok() {
                s.seen = seq;
                delivered += 1;
            }
        }
        delivered
    }
}

/// Messages read per page when catching up.
const PAGE: u32 = 256;

/// Pushes the conversation's agent replies up to seq `upto` (committed) to
/// the sockets here that follow it and have not had them, oldest first;
/// returns how many reached a socket. `own` is the frame of `upto` itself
/// when the caller has it (a reply stored on this node: not read back).
///
/// Replies of one conversation commit in seq order (each takes the
/// conversation's row lock for its seq), so a read made once `upto`
/// committed finds every earlier one.
pub async fn push_replies(
    app: &AppState,
    tenant_id: &str,
    conversation_id: &str,
    upto: i64,
    own: Option<Push>,
) -> Result<usize, String> {
    let Some(mut after) = app.hub.floor(conversation_id) else {
        return Ok(0);
    };
    let mut pushed = 0;
    let mut own = own;
    if after < upto.saturating_sub(1) || (after < upto && own.is_none()) {
        let Some(cipher) = app.tenants.get(tenant_id).and_then(|t| t.cipher()) else {
            return Ok(0);
        };
        'pages: loop {
            let rows = app
                .store
                .messages(conversation_id, after, PAGE)
                .await
                .map_err(|e| e.to_string())?;
            let full = rows.len() == PAGE as usize;
            for m in rows {
                if m.seq > upto {
                    break 'pages;
                }
                after = m.seq;
                if m.direction != "outbound" {
                    continue;
                }
                let seq = m.seq;
                let frame = match own.take_if(|_| seq == upto) {
                    Some(f) => f,
                    None => match frame_of(&cipher, tenant_id, m) {
                        Ok(f) => f,
                        // One unreadable reply must not hold back the
                        // ones after it: skipped (the visitor can still
                        // resume), the rest pushed.
                        Err(e) => {
                            tracing::warn!(tenant = tenant_id, seq, error = %e, "a stored reply could not be opened for its push; skipped");
                            continue;
                        }
                    },
                };
                if app.hub.publish(conversation_id, seq, frame) > 0 {
                    pushed += 1;
                }
            }
            if !full {
                break;
            }
        }
    }
    // The reply itself, when the read did not reach it (or was not needed).
    if let Some(frame) = own
        && app.hub.publish(conversation_id, upto, frame) > 0
    {
        pushed += 1;
    }
    Ok(pushed)
}

/// A stored message as a `msg.new` push.
fn frame_of(
    cipher: &crate::crypto::TenantCipher,
    tenant_id: &str,
    m: crate::store::MessageRecord,
) -> Result<Push, String> {
    let content =
        ingress::open_body(cipher, tenant_id, &m.id, &m.body_ct).map_err(|e| e.to_string())?;
    frame(MsgNew {
        conversation_id: m.conversation_id,
        message_id: m.id,
        seq: m.seq,
        direction: m.direction,
        content,
        created_ts: m.received_at,
    })
}

/// A `msg.new` frame, serialised.
pub fn frame(m: MsgNew) -> Result<Push, String> {
    Ok(serde_json::to_string(&ServerFrame::MsgNew(m))
        .map_err(|e| e.to_string())?
        .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut mpsc::Receiver<Push>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(p) = rx.try_recv() {
            out.push(p.to_string());
        }
        out
    }

    #[test]
    fn each_socket_gets_a_message_once_and_in_order() {
        let hub = PushHub::default();
        let (tx1, mut rx1) = mpsc::channel(16);
        let (tx2, mut rx2) = mpsc::channel(16);
        let (s1, s2) = (hub.socket_id(), hub.socket_id());
        hub.subscribe("c", s1, &tx1, 1);
        // Resumed up to 3.
        hub.subscribe("c", s2, &tx2, 0);
        hub.mark_seen("c", s2, 3);
        assert_eq!(hub.following(), vec![("c".to_string(), 1)]);
        assert_eq!(hub.publish("c", 3, "m3".into()), 1);
        // Twice, or older after newer: not delivered.
        assert_eq!(hub.publish("c", 3, "m3".into()), 0);
        assert_eq!(hub.publish("c", 2, "m2".into()), 0);
        assert_eq!(hub.publish("c", 5, "m5".into()), 2);
        assert_eq!(drain(&mut rx1), ["m3", "m5"]);
        assert_eq!(drain(&mut rx2), ["m5"]);
        assert_eq!(hub.following(), vec![("c".to_string(), 5)]);
        // Subscribing again (a later ack) keeps the mark.
        hub.subscribe("c", s1, &tx1, 9);
        assert_eq!(hub.following(), vec![("c".to_string(), 5)]);
        hub.unsubscribe("c", s1);
        hub.unsubscribe("c", s2);
        assert!(!hub.has_subscribers("c"));
        assert!(hub.following().is_empty());
    }

    #[test]
    fn a_full_socket_keeps_its_mark() {
        let hub = PushHub::default();
        let (tx, mut rx) = mpsc::channel(1);
        let s = hub.socket_id();
        hub.subscribe("c", s, &tx, 0);
        assert_eq!(hub.publish("c", 1, "m1".into()), 1);
        // Full: lost for now, and a catch-up may still deliver it.
        assert_eq!(hub.publish("c", 2, "m2".into()), 0);
        assert_eq!(hub.following(), vec![("c".to_string(), 1)]);
        assert_eq!(drain(&mut rx), ["m1"]);
        assert_eq!(hub.publish("c", 2, "m2".into()), 1);
        assert_eq!(drain(&mut rx), ["m2"]);
    }
}
