//! Fan-out of pushes to visitors' open web-chat sockets, by conversation.
//!
//! A socket subscribes to the conversations it sends in or resumes; an agent
//! reply is published once and delivered to each. A socket too slow to keep
//! up loses pushes (it can `resume`) rather than stalling the publisher.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

/// A serialised server frame.
pub type Push = std::sync::Arc<str>;

/// Sockets subscribed to one conversation, by socket id.
type Subscribers = Vec<(u64, mpsc::Sender<Push>)>;

#[derive(Default)]
pub struct PushHub {
    subs: Mutex<HashMap<String, Subscribers>>,
    next_id: AtomicU64,
}

impl PushHub {
    /// A fresh id for a socket.
    pub fn socket_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn subscribe(&self, conversation_id: &str, socket: u64, tx: &mpsc::Sender<Push>) {
        let mut g = match self.subs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let list = g.entry(conversation_id.to_string()).or_default();
        if !list.iter().any(|(id, _)| *id == socket) {
            list.push((socket, tx.clone()));
        }
    }

    pub fn unsubscribe(&self, conversation_id: &str, socket: u64) {
        let mut g = match self.subs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(list) = g.get_mut(conversation_id) {
            list.retain(|(id, _)| *id != socket);
            if list.is_empty() {
                g.remove(conversation_id);
            }
        }
    }

    /// Whether any socket of this node follows the conversation.
    pub fn has_subscribers(&self, conversation_id: &str) -> bool {
        let g = match self.subs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.contains_key(conversation_id)
    }

    /// Delivers to every subscribed socket; returns how many took it.
    pub fn publish(&self, conversation_id: &str, frame: Push) -> usize {
        let g = match self.subs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(conversation_id)
            .map(|list| {
                list.iter()
                    .filter(|(_, tx)| tx.try_send(frame.clone()).is_ok())
                    .count()
            })
            .unwrap_or(0)
    }
}
