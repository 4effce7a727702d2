//! Trace records → conversations to play, each message with its intended
//! offset from the start of the replay: `(at - first at) / speed`.
//! A message is due at its offset however long the ones before it took
//! (wrk2's rule), so the replay keeps the recorded timing and a slow target
//! shows as latency.

use std::collections::HashMap;
use std::time::Duration;

use c24_api::admin::throughput::Direction;

use super::trace::TraceLine;
use crate::scenario::Channel;

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayMessage {
    /// Due this long after the replay starts.
    pub offset: Duration,
    pub direction: Direction,
    pub size: u64,
    /// Line in the trace.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplayConversation {
    pub tenant_id: String,
    pub channel: Channel,
    /// The trace's pseudonymous id.
    pub conversation: String,
    /// In recorded order; the first is inbound.
    pub messages: Vec<ReplayMessage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplaySchedule {
    /// Ordered by their first message's offset.
    pub conversations: Vec<ReplayConversation>,
    /// Offset of the last message.
    pub duration: Duration,
    /// First to last record in the trace itself (before `speed`).
    pub trace_span: Duration,
    pub speed: f64,
    /// Outbound messages of conversations whose inbound start lies before
    /// the trace's window: there is nothing on the target to answer yet.
    pub skipped_outbound: u64,
}

impl ReplaySchedule {
    pub fn messages(&self) -> usize {
        self.conversations.iter().map(|c| c.messages.len()).sum()
    }

    /// Trace tenant ids in order of first appearance.
    pub fn tenants(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in &self.conversations {
            if !out.contains(&c.tenant_id) {
                out.push(c.tenant_id.clone());
            }
        }
        out
    }

    pub fn channels(&self) -> Vec<Channel> {
        super::channels_of(&self.conversations)
    }
}

/// Groups records by (tenant, channel, conversation) and computes offsets.
pub fn build(lines: &[TraceLine], speed: f64) -> ReplaySchedule {
    let mut sorted: Vec<&TraceLine> = lines.iter().collect();
    sorted.sort_by_key(|l| (l.at, l.line));
    let first = sorted.first().map(|l| l.at);
    let last = sorted.last().map(|l| l.at);
    let offset = |at: chrono::DateTime<chrono::Utc>| -> Duration {
        let micros = first
            .map(|f| (at - f).num_microseconds().unwrap_or(i64::MAX).max(0))
            .unwrap_or(0);
        Duration::from_secs_f64(micros as f64 / 1e6 / speed)
    };
    let mut index: HashMap<(String, Channel, String), usize> = HashMap::new();
    let mut conversations: Vec<ReplayConversation> = Vec::new();
    let mut skipped = 0u64;
    for l in sorted {
        let r = &l.record;
        let channel = Channel::from(r.channel);
        let key = (r.tenant_id.clone(), channel, r.conversation.clone());
        let i = match index.get(&key) {
            Some(i) => *i,
            None => {
                if r.direction == Direction::Outbound {
                    skipped += 1;
                    continue;
                }
                conversations.push(ReplayConversation {
                    tenant_id: r.tenant_id.clone(),
                    channel,
                    conversation: r.conversation.clone(),
                    messages: Vec::new(),
                });
                index.insert(key, conversations.len() - 1);
                conversations.len() - 1
            }
        };
        conversations[i].messages.push(ReplayMessage {
            offset: offset(l.at),
            direction: r.direction,
            size: r.size_bytes,
            line: l.line,
        });
    }
    let duration = conversations
        .iter()
        .flat_map(|c| c.messages.last())
        .map(|m| m.offset)
        .max()
        .unwrap_or_default();
    let trace_span = match (first, last) {
        (Some(f), Some(l)) => (l - f).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    ReplaySchedule {
        conversations,
        duration,
        trace_span,
        speed,
        skipped_outbound: skipped,
    }
}
