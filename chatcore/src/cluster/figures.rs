//! The live figures that do not add up second by second, and how a node
//! combines the other nodes' with its own (several nodes on one database):
//!
//! - latency: each node publishes its latency slots' HdrHistograms (V2
//!   format with DEFLATE, a few hundred bytes each); a reader merges the
//!   other nodes' slots of its window into its own histograms, so the
//!   percentiles are of every node's messages (an average of the nodes'
//!   percentiles would mean nothing);
//! - totals since start: each node publishes its own with a heartbeat; the
//!   overview shows the sum over the nodes heard from recently, and the
//!   earliest start among them.

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};

use crate::stats::{ChannelLatency, ErrorCodeCount, NodeTotals, OverviewFigures};
use crate::store::{Channel, NodeLatencyRow, NodeRow};

/// A histogram as published: V2 with DEFLATE; `None` if it does not encode.
pub fn encode(h: &Histogram<u32>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut out).ok()?;
    Some(out)
}

/// A published histogram; `None` if the bytes are not one.
pub fn decode(bytes: &[u8]) -> Option<Histogram<u32>> {
    let mut reader = bytes;
    Deserializer::new().deserialize(&mut reader).ok()
}

/// Adds `other`'s counts to `into`. Nodes of one version share the bounds,
/// so this is exact; a histogram with other bounds is added value by value
/// (clamped to `into`'s range).
fn add(into: &mut Histogram<u32>, other: &Histogram<u32>) {
    if into.add(other).is_err() {
        for v in other.iter_recorded() {
            into.saturating_record_n(v.value_iterated_to(), v.count_at_value());
        }
    }
}

/// Merges the other nodes' latency slots into this node's per-channel
/// latency (in [`Channel::ALL`] order). Slots that do not decode, or name
/// an unknown channel, are skipped. Returns how many were merged.
pub fn merge_latency(local: &mut [ChannelLatency], others: &[NodeLatencyRow]) -> usize {
    let mut merged = 0;
    for row in others {
        let Some(l) = usize::try_from(row.channel)
            .ok()
            .and_then(|c| local.get_mut(c))
        else {
            continue;
        };
        let Some(h) = decode(&row.histogram) else {
            tracing::debug!(
                ring = row.ring,
                slot = row.slot,
                "an undecodable latency slot"
            );
            continue;
        };
        add(&mut l.histogram, &h);
        l.encrypt_ns = l.encrypt_ns.saturating_add(row.encrypt_ns.max(0) as u64);
        merged += 1;
    }
    merged
}

/// This node's heartbeat row: its start and totals since.
pub fn node_row(started_at_ms: i64, now_ms: i64, totals: &NodeTotals) -> NodeRow {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    NodeRow {
        node: String::new(),
        started_at_ms,
        heartbeat_ms: now_ms,
        messages_total: clamp(totals.messages_total),
        bytes_total: clamp(totals.bytes_total),
        errors_total: clamp(totals.errors_total),
        error_codes: serde_json::to_string(&totals.error_codes).unwrap_or_else(|_| "[]".into()),
    }
}

/// Another node's totals as published (error codes that do not parse
/// count in `errors_total` only).
fn totals_of(row: &NodeRow) -> NodeTotals {
    NodeTotals {
        messages_total: row.messages_total.max(0) as u64,
        bytes_total: row.bytes_total.max(0) as u64,
        errors_total: row.errors_total.max(0) as u64,
        error_codes: serde_json::from_str(&row.error_codes).unwrap_or_default(),
    }
}

fn channel_order(channel: &str) -> usize {
    Channel::ALL
        .iter()
        .position(|c| c.as_str() == channel)
        .unwrap_or(Channel::ALL.len())
}

/// Sums totals; error codes are added per (channel, code), in channel then
/// code order.
pub fn sum_totals<'a>(all: impl IntoIterator<Item = &'a NodeTotals>) -> NodeTotals {
    let mut sum = NodeTotals::default();
    let mut codes = std::collections::BTreeMap::<(usize, String, String), u64>::new();
    for t in all {
        sum.messages_total = sum.messages_total.saturating_add(t.messages_total);
        sum.bytes_total = sum.bytes_total.saturating_add(t.bytes_total);
        sum.errors_total = sum.errors_total.saturating_add(t.errors_total);
        for c in &t.error_codes {
            let key = (channel_order(&c.channel), c.channel.clone(), c.code.clone());
            let n = codes.entry(key).or_default();
            *n = n.saturating_add(c.count);
        }
    }
    sum.error_codes = codes
        .into_iter()
        .map(|((_, channel, code), count)| ErrorCodeCount {
            channel,
            code,
            count,
        })
        .collect();
    sum
}

/// Sets the overview's totals since start, `started_at`, `uptime_s` and
/// `nodes` to those of this node (`own`, started at `own_started_at_ms`)
/// and the `others` live nodes together.
pub fn apply_totals(
    live: &mut OverviewFigures,
    own: &NodeTotals,
    own_started_at_ms: i64,
    others: &[NodeRow],
    now_ms: i64,
) {
    let theirs: Vec<NodeTotals> = others.iter().map(totals_of).collect();
    let sum = sum_totals(std::iter::once(own).chain(&theirs));
    let started = others
        .iter()
        .map(|n| n.started_at_ms)
        .fold(own_started_at_ms, i64::min);
    live.messages_total = sum.messages_total;
    live.bytes_total = sum.bytes_total;
    live.errors_total = sum.errors_total;
    live.error_codes = sum.error_codes;
    live.nodes = 1 + others.len() as u64;
    live.started_at = crate::clock::rfc3339(started);
    live.uptime_s = (now_ms - started).max(0) / 1000;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{self, LiveStats, Percentiles};

    /// On an hour boundary.
    const T0: i64 = 1_699_999_200_000;
    const W: Channel = Channel::Webchat;
    const IN: stats::Direction = stats::Direction::Inbound;

    fn histogram(values: &[u64]) -> Histogram<u32> {
        let mut h = stats::latency_histogram().unwrap();
        for v in values {
            h.record(*v).unwrap();
        }
        h
    }

    fn slot_rows(s: &LiveStats, now_ms: i64) -> Vec<NodeLatencyRow> {
        s.recent_latency_slots(now_ms)
            .into_iter()
            .map(|l| NodeLatencyRow {
                ring: l.ring,
                slot: l.slot,
                channel: l.channel,
                histogram: encode(&l.latency.histogram).unwrap(),
                encrypt_ns: l.latency.encrypt_ns as i64,
            })
            .collect()
    }

    #[test]
    fn histograms_survive_encoding_and_stay_small() {
        let values: Vec<u64> = (1..=5_000).map(|i| i * 37 % 90_000 + 200).collect();
        let h = histogram(&values);
        let bytes = encode(&h).unwrap();
        assert!(bytes.len() < 4_000, "{} bytes", bytes.len());
        let back = decode(&bytes).unwrap();
        assert_eq!(back, h);
        assert_eq!(decode(b"not a histogram"), None);
    }

    /// Two nodes' latency over one window: the merged percentiles are those
    /// of all their messages, not an average of each node's percentiles.
    #[test]
    fn merged_latency_is_of_every_nodes_messages() {
        let fast = LiveStats::new(T0);
        let slow = LiveStats::new(T0);
        // 90 fast messages of 1 ms on one node, 10 slow ones of 500 ms on the other.
        for i in 0..90 {
            fast.record("a", W, IN, 10, 1_000, 100, T0 + 1_000 + i);
        }
        for i in 0..10 {
            slow.record("b", W, IN, 10, 500_000, 300, T0 + 2_000 + i);
        }
        let now = T0 + 3_000;
        let window = 60_000;
        let mut mine = fast.latency(window, now).unwrap();
        let theirs = slot_rows(&slow, now);
        // The slow node's slots: a 10 s, a 1 min and a 1 h one, webchat only.
        assert_eq!(theirs.len(), 3);
        let w = stats::latency_window(window, now);
        let in_window: Vec<NodeLatencyRow> = theirs
            .into_iter()
            .filter(|r| r.ring == w.ring && (w.first..=w.last).contains(&r.slot))
            .collect();
        assert_eq!(merge_latency(&mut mine, &in_window), 1);

        let mut t = fast.throughput(window, None, now);
        stats::set_latency(&mut t.per_channel, &mut t.ingest_latency_us, &mine);
        let webchat = &t.per_channel[0].ingest_latency_us;
        let all = histogram(&[&[1_000u64; 90][..], &[500_000u64; 10][..]].concat());
        assert_eq!(*webchat, stats::percentiles_of(&all));
        assert_eq!(t.ingest_latency_us, stats::percentiles_of(&all));
        assert_eq!(webchat.count, 100);
        // p50 is the fast node's, p99 the slow node's (an average of the
        // nodes' p99 would be about 250 ms).
        assert!(webchat.p50 < 1_100, "{webchat:?}");
        assert!(webchat.p99 >= 495_000, "{webchat:?}");
        // Sealing: (90 × 100 + 10 × 300) ns over 100 messages.
        assert!((t.per_channel[0].encrypt_ns_per_msg - 120.0).abs() < 1e-9);
        // Other channels untouched.
        assert_eq!(t.per_channel[1].ingest_latency_us, Percentiles::default());
    }

    #[test]
    fn published_slots_are_the_current_and_previous_of_each_ring() {
        let s = LiveStats::new(T0);
        // Seconds 5 and 15: two 10 s slots, one minute, one hour.
        s.record("a", W, IN, 10, 1_000, 0, T0 + 5_000);
        s.record("a", W, IN, 10, 2_000, 0, T0 + 15_000);
        let slots = s.recent_latency_slots(T0 + 15_500);
        let mut got: Vec<(i16, i64, u64)> = slots
            .iter()
            .map(|l| (l.ring, l.slot, l.latency.histogram.len()))
            .collect();
        got.sort();
        let (fine, mid, coarse) = (T0 / 10_000, T0 / 60_000, T0 / 3_600_000);
        assert_eq!(
            got,
            [(0, fine, 1), (0, fine + 1, 1), (1, mid, 2), (2, coarse, 2)]
        );
        // 30 s later the 10 s slots are neither current nor previous.
        let later: Vec<i16> = s
            .recent_latency_slots(T0 + 45_000)
            .iter()
            .map(|l| l.ring)
            .collect();
        assert_eq!(later, [1, 2]);
        // Horizons: what a 5 min, 1 h and 24 h window can still read.
        let h = stats::latency_horizons(T0 + 15_500);
        assert_eq!(h, [(0, fine + 1 - 30), (1, mid - 60), (2, coarse - 24)]);
    }

    #[test]
    fn merging_skips_what_does_not_fit() {
        let mut mine = LiveStats::new(T0).latency(60_000, T0).unwrap();
        let good = encode(&histogram(&[7_000])).unwrap();
        let rows = [
            NodeLatencyRow {
                ring: 0,
                slot: 0,
                channel: 7,
                histogram: good.clone(),
                encrypt_ns: 1,
            },
            NodeLatencyRow {
                ring: 0,
                slot: 0,
                channel: 2,
                histogram: b"garbage".to_vec(),
                encrypt_ns: 1,
            },
            NodeLatencyRow {
                ring: 0,
                slot: 0,
                channel: 2,
                histogram: good,
                encrypt_ns: 5,
            },
        ];
        assert_eq!(merge_latency(&mut mine, &rows), 1);
        assert_eq!(mine[2].histogram.len(), 1);
        assert_eq!(mine[2].encrypt_ns, 5);
        // Other bounds (a histogram of another precision) still add up.
        let mut other = Histogram::<u32>::new_with_bounds(1, 1_000_000, 3).unwrap();
        other.record_n(123_456, 4).unwrap();
        let row = NodeLatencyRow {
            ring: 0,
            slot: 0,
            channel: 0,
            histogram: encode(&other).unwrap(),
            encrypt_ns: 0,
        };
        assert_eq!(merge_latency(&mut mine, &[row]), 1);
        assert_eq!(mine[0].histogram.len(), 4);
        let p50 = mine[0].histogram.value_at_quantile(0.5);
        assert!((122_000..=125_000).contains(&p50), "{p50}");
    }

    fn code(channel: &str, code: &str, count: u64) -> ErrorCodeCount {
        ErrorCodeCount {
            channel: channel.into(),
            code: code.into(),
            count,
        }
    }

    #[test]
    fn totals_add_up_over_the_live_nodes() {
        let s = LiveStats::new(T0 + 5_000);
        s.record("a", W, IN, 100, 1_000, 0, T0 + 6_000);
        s.record_error(W, "unauthorized", T0 + 6_000);
        s.record_error(Channel::Email, "bad_signature", T0 + 6_000);
        let own = s.node_totals();
        assert_eq!(
            own.error_codes,
            [
                code("webchat", "unauthorized", 1),
                code("email", "bad_signature", 1)
            ]
        );
        let other = NodeTotals {
            messages_total: 10,
            bytes_total: 1_000,
            errors_total: 4,
            error_codes: vec![
                code("whatsapp", "bad_signature", 1),
                code("webchat", "unauthorized", 2),
                code("webchat", "rate_limited", 1),
            ],
        };
        let row = NodeRow {
            node: "other".into(),
            ..node_row(T0, T0 + 9_000, &other)
        };
        assert_eq!(totals_of(&row), other);
        let mut broken = row.clone();
        broken.error_codes = "{".into();
        assert_eq!(totals_of(&broken).error_codes, []);

        let now = T0 + 10_000;
        let mut live = s.overview(now);
        assert_eq!((live.nodes, live.uptime_s, live.messages_total), (1, 5, 1));
        apply_totals(&mut live, &own, s.started_at_ms(), &[row], now);
        assert_eq!(live.nodes, 2);
        assert_eq!(
            (live.messages_total, live.bytes_total, live.errors_total),
            (11, 1_100, 6)
        );
        // The earliest start: the other node's.
        assert_eq!(live.started_at, crate::clock::rfc3339(T0));
        assert_eq!(live.uptime_s, 10);
        assert_eq!(
            live.error_codes,
            [
                code("webchat", "rate_limited", 1),
                code("webchat", "unauthorized", 3),
                code("whatsapp", "bad_signature", 1),
                code("email", "bad_signature", 1),
            ]
        );
    }

    #[test]
    fn active_tenants_are_a_union_over_the_nodes() {
        let s = LiveStats::new(T0);
        s.record("both", W, IN, 1, 1, 0, T0 + 1_000);
        s.record("here", W, IN, 1, 1, 0, T0 + 2_000);
        let now = T0 + 30_000;
        assert_eq!(s.overview(now).active_tenants_last_60s, 2);
        let mut others = stats::OtherNodesCounts::default();
        let s0 = T0 / 1000;
        others.insert("both".into(), vec![(s0 + 3, 4)]);
        others.insert("there".into(), vec![(s0 + 4, 1)]);
        // Out of the window: 61 s before `now`.
        others.insert("long_ago".into(), vec![(s0 + 30 - 60, 1)]);
        s.set_other_nodes(others);
        // both, here, there: "both" once.
        assert_eq!(s.overview(now).active_tenants_last_60s, 3);
    }
}
