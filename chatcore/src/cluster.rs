//! What this node does about changes other nodes commit to a shared
//! database (PostgreSQL; see `store::postgres::notify`).
//!
//! - An agent reply stored by another node reaches the visitor sockets
//!   connected here: the sealed row is read and opened with the tenant's key
//!   (the event carries ids only), then pushed like a local reply. After
//!   missed events (a listener reconnect) each conversation followed here
//!   gets the replies committed meanwhile, once each and in order.
//! - A tenant created or changed elsewhere (state, DPA, key destruction) is
//!   reloaded into this node's directory, so ingress here admits and refuses
//!   as there.
//! - A data-subject request, restriction or breach record changed elsewhere
//!   reloads this node's restrictions and open requests and incidents
//!   (`compliance::reload`); a registry change reloads the sub-processor
//!   registry.
//! - What other nodes store, purge or erase moves this node's per-tenant
//!   usage counters too (the tenant listing's stored messages and bytes).
//!   So does the traffic trace's total (the retention report's access-logs
//!   category): each batch's notification carries what it added to the
//!   trace less what its purge deleted. After missed events (a listener
//!   reconnect) all of them are recounted.
//! - Live figures stay each node's own; each node publishes its per-second
//!   counts, platform-wide and per tenant ([`publish_seconds`]), and
//!   `GET /admin/v1/throughput` (with or without a tenant), the overview and
//!   the tenant list's `msgs_per_s` and `msgs_per_sec_history` add the other
//!   nodes' ([`add_other_nodes`], [`add_other_nodes_to_overview`], the
//!   stats' other-nodes overlay), so either node shows the sum.
//! - What does not add up second by second ([`figures`]): each node also
//!   publishes its latency slots' histograms, which a reader merges into
//!   its own (percentiles of every node's messages), and a heartbeat with
//!   its totals since start, which the overview sums over the nodes heard
//!   from in the last [`NODE_LIVE_MS`] (`nodes`; `started_at` the earliest
//!   of their starts). The overview's active tenants are the union of the
//!   nodes' (from the per-tenant counts), and its `error_codes` the sum.
//! - `/metrics` stays each node's own: Prometheus scrapes every node and
//!   sums there, so a node adding the others' would be counted once per
//!   node. `c24_node_info` names the node it is.

use tokio::sync::broadcast::error::RecvError;

use crate::http::AppState;
use crate::stats::LiveStats;
use crate::store::{ClusterEvent, Store, StoreError};
use crate::tenants;

/// Follows the store's cluster events, if it has any (one SQLite node has
/// none), and publishes this node's live figures for the others.
pub fn spawn(state: AppState) {
    let Some(mut rx) = state.store.cluster_events() else {
        return;
    };
    tokio::spawn(publish_seconds(state.clone()));
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
                Ok(ClusterEvent::Usage { deltas, trace }) => {
                    for (tenant, messages, bytes, conversations) in deltas {
                        if let Some(t) = state.tenants.get(&tenant) {
                            t.usage.add(messages, bytes, conversations);
                        }
                    }
                    state
                        .trace_rows
                        .fetch_add(trace, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(ClusterEvent::Compliance) => crate::compliance::reload(&state),
                Ok(ClusterEvent::Registry) => {
                    crate::http::admin::subprocessors::reload(&state).await;
                }
                Ok(ClusterEvent::Resync) | Err(RecvError::Lagged(_)) => {
                    reload_tenants(&state, None).await;
                    recount_usage(&state).await;
                    recount_trace(&state).await;
                    catch_up_pushes(&state).await;
                    crate::compliance::reload(&state);
                    crate::http::admin::subprocessors::reload(&state).await;
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

/// Sets the trace total to what the database holds (after missed events).
async fn recount_trace(state: &AppState) {
    match state.store.traffic_trace_rows().await {
        Ok(n) => state
            .trace_rows
            .store(n, std::sync::atomic::Ordering::Relaxed),
        Err(e) => tracing::warn!(error = %e, "recounting the traffic trace failed"),
    }
}

/// Pushes another node's reply `seq` (and any earlier one not yet pushed)
/// to the sockets here that follow the conversation.
async fn push_reply(
    state: &AppState,
    tenant_id: &str,
    conversation_id: &str,
    seq: i64,
) -> Result<(), String> {
    crate::push::push_replies(state, tenant_id, conversation_id, seq, None)
        .await
        .map(|_| ())
}

/// After missed events (a listener reconnect, a lagging receiver): every
/// conversation followed here gets the agent replies committed since the
/// lowest mark among its sockets, oldest first; each socket only those it
/// has not had.
async fn catch_up_pushes(state: &AppState) {
    for (conversation_id, _) in state.hub.following() {
        let tenant = match state.store.conversation(&conversation_id).await {
            Ok(Some(c)) => c.tenant_id,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "catching up on missed replies failed");
                continue;
            }
        };
        match crate::push::push_replies(state, &tenant, &conversation_id, i64::MAX, None).await {
            Ok(0) => {}
            // No conversation id in the logs (kept 90 days; a person's
            // conversation must not outlive their erasure there).
            Ok(n) => tracing::info!(
                tenant = %tenant,
                pushed = n,
                "pushed replies committed while cluster events were missed"
            ),
            Err(e) => tracing::warn!(error = %e, "catching up on missed replies failed"),
        }
    }
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

/// Seconds of this node's figures re-published each tick: a message is
/// counted in the second it committed, which may be a moment ago.
const REPUBLISH_S: i64 = 5;
/// `node_seconds` series of refused or failed ingress requests: this plus
/// the channel index (the message series are 0..5).
const ERROR_SERIES: i16 = 6;
/// Published seconds are kept this long (the longest throughput window, and then some).
const KEEP_S: i64 = 25 * 3600;

mod figures;

/// A node heard from this recently counts in the overview's totals and
/// `nodes` (it publishes every second).
pub const NODE_LIVE_MS: i64 = 10_000;

/// Every second, upserts this node's counts of the last complete seconds,
/// its latency slots being filled, and its heartbeat with its totals.
async fn publish_seconds(state: AppState) {
    let mut shutdown = state.shutdown.clone();
    let mut tenants = TenantExchange::default();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut latency_published = LatencyPublished::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = state.clock.now_ms();
        let t = state.stats.throughput(REPUBLISH_S * 1000, None, now);
        let mut rows = Vec::new();
        for (k, series) in t.series.iter().enumerate() {
            // The last bucket is the current second, still filling.
            let complete = series.counts.len().saturating_sub(1);
            for b in 0..complete {
                if series.counts[b] == 0 {
                    continue;
                }
                let second = (t.from_ms + b as i64 * t.bucket_ms).div_euclid(1000);
                rows.push((
                    second,
                    k as i16,
                    series.counts[b] as i64,
                    series.bytes.get(b).copied().unwrap_or(0) as i64,
                ));
            }
        }
        // Errors as series `ERROR_SERIES + channel` (a node that predates
        // them skips series it does not know).
        let now_s = now.div_euclid(1000);
        for (second, c, errors) in state
            .stats
            .error_seconds(now_s - REPUBLISH_S, REPUBLISH_S as usize)
        {
            rows.push((second, ERROR_SERIES + c as i16, errors as i64, 0));
        }
        let prune_before = now.div_euclid(1000) - KEEP_S;
        if let Err(e) = state.store.publish_seconds(rows, prune_before).await {
            tracing::debug!(error = %e, "publishing this node's figures failed");
        }
        // The same per tenant (complete seconds only), then the other
        // nodes' recent per-tenant counts for the tenant rates and histories.
        if let Err(e) = tenants
            .publish(&state.stats, &*state.store, now_s, prune_before)
            .await
        {
            tracing::debug!(error = %e, "publishing this node's tenant figures failed");
        }
        refresh_other_tenants(&state, &mut tenants, now_s).await;
        publish_latency(&state, now, &mut latency_published).await;
        let row = figures::node_row(state.stats.started_at_ms(), now, &state.stats.node_totals());
        if let Err(e) = state.store.publish_node(row, now - KEEP_S * 1000).await {
            tracing::debug!(error = %e, "publishing this node's heartbeat failed");
        }
    }
}

/// The message count of each latency slot as last published:
/// (ring, slot, channel) → messages. A slot unchanged since is not sent again.
type LatencyPublished = std::collections::HashMap<(i16, i64, i16), u64>;

/// Upserts this node's current and previous latency slots that changed
/// since last published, and prunes every node's slots no window reads.
async fn publish_latency(state: &AppState, now_ms: i64, published: &mut LatencyPublished) {
    let slots = state.stats.recent_latency_slots(now_ms);
    let mut counts = LatencyPublished::with_capacity(slots.len());
    let mut rows = Vec::new();
    for l in slots {
        let key = (l.ring, l.slot, l.channel);
        let n = l.latency.histogram.len();
        counts.insert(key, n);
        if published.get(&key) == Some(&n) {
            continue;
        }
        let Some(histogram) = figures::encode(&l.latency.histogram) else {
            continue;
        };
        rows.push(crate::store::NodeLatencyRow {
            ring: l.ring,
            slot: l.slot,
            channel: l.channel,
            histogram,
            encrypt_ns: i64::try_from(l.latency.encrypt_ns).unwrap_or(i64::MAX),
        });
    }
    let horizons = crate::stats::latency_horizons(now_ms);
    match state.store.publish_latency(rows, horizons).await {
        // Only the slots still current or previous are remembered.
        Ok(()) => *published = counts,
        Err(e) => tracing::debug!(error = %e, "publishing this node's latency failed"),
    }
}

/// Merges the other nodes' latency slots of a `window_ms` read at `now_ms`
/// into this node's, and sets the figures' per-channel and overall latency
/// (and sealing time) from the merged histograms. Leaves this node's
/// figures as they are when no other node has slots there.
async fn add_other_nodes_latency(
    state: &AppState,
    per_channel: &mut [crate::stats::ChannelFigures],
    overall: &mut crate::stats::Percentiles,
    window_ms: i64,
    now_ms: i64,
) {
    let w = crate::stats::latency_window(window_ms, now_ms);
    let rows = match state
        .store
        .other_nodes_latency(w.ring, w.first, w.last)
        .await
    {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "reading the other nodes' latency failed");
            return;
        }
    };
    let Some(mut latency) = state.stats.latency(window_ms, now_ms) else {
        return;
    };
    if figures::merge_latency(&mut latency, &rows) > 0 {
        crate::stats::set_latency(per_channel, overall, &latency);
    }
}

/// Seconds of the other nodes' per-tenant counts kept in memory: the tenant
/// list's history and rate.
const TENANT_HISTORY_S: i64 = crate::http::admin::tenants::HISTORY_SECONDS as i64 + 1;

async fn refresh_other_tenants(state: &AppState, tenants: &mut TenantExchange, now_s: i64) {
    if let Err(e) = tenants.refresh(&state.stats, &*state.store, now_s).await {
        tracing::debug!(error = %e, "reading the other nodes' tenant figures failed");
    }
}

/// Seconds before the last read's `now_s` that each read takes again: a
/// second's first publication lands up to a tick after it ends, so the
/// newest second published at the last read, and every later one.
const REREAD_S: i64 = 1;

/// The per-tenant half of the figures the nodes exchange each second:
/// this node's counts published ([`Self::publish`]), the other nodes' read
/// into the live stats ([`Self::refresh`]). Both are incremental, so a tick
/// costs about the rows that changed, not every active tenant's last minute:
/// a publish writes only the (second, tenant, series) counts that differ
/// from what it last wrote, and a read takes again only the seconds that
/// may have changed since the last one, keeping the older ones. Public for
/// the `tenant_publish` bench, which times one tick of each.
#[derive(Default)]
pub struct TenantExchange {
    /// What the last successful publish left in the table for the
    /// republished seconds: (second, tenant, series) → (messages, bytes).
    published: std::collections::HashMap<(i64, String, i16), (i64, i64)>,
    /// The other nodes' counts read so far: tenant → (second, messages),
    /// the last [`TENANT_HISTORY_S`] seconds.
    others: crate::stats::OtherNodesCounts,
    /// `now_s` of the last successful read.
    read_at: Option<i64>,
    /// `now_s` of the last successful read that reached back for late counts.
    wide_at: Option<i64>,
    /// Successful reads, for the periodic wider one.
    reads: u64,
}

impl TenantExchange {
    /// Publishes this node's per-tenant counts of the last complete seconds
    /// that changed since the last publish, and prunes every node's rows
    /// before `prune_before_s`. Returns the rows written.
    pub async fn publish(
        &mut self,
        stats: &LiveStats,
        store: &dyn Store,
        now_s: i64,
        prune_before_s: i64,
    ) -> Result<usize, StoreError> {
        let rows = stats.tenant_seconds(now_s - REPUBLISH_S, REPUBLISH_S as usize);
        let mut current = std::collections::HashMap::with_capacity(rows.len());
        let mut changed = Vec::new();
        for (second, tenant, series, messages, bytes) in rows {
            let value = (messages as i64, bytes as i64);
            let key = (second, tenant, series);
            if self.published.get(&key) != Some(&value) {
                changed.push((second, key.1.clone(), series, value.0, value.1));
            }
            current.insert(key, value);
        }
        let n = changed.len();
        store
            .publish_tenant_seconds(changed, prune_before_s)
            .await?;
        // Only once written: after a failure the next tick writes them again.
        self.published = current;
        Ok(n)
    }

    /// Brings the stats' other-nodes counts up to the other nodes' last
    /// [`TENANT_HISTORY_S`] seconds. Reads the seconds from [`REREAD_S`]
    /// before the last read on; every [`REPUBLISH_S`]th read reaches back
    /// to [`REPUBLISH_S`]` + 1` before the previous such read, which takes
    /// in any message counted late in an older second since (a publish
    /// rewrites only its last [`REPUBLISH_S`] seconds). The first read, and
    /// one after a clock jump, read the whole history. Returns the rows read.
    pub async fn refresh(
        &mut self,
        stats: &LiveStats,
        store: &dyn Store,
        now_s: i64,
    ) -> Result<usize, StoreError> {
        let oldest = now_s - TENANT_HISTORY_S;
        let (from, wide) = match (self.read_at, self.wide_at) {
            (Some(last), Some(wide_at))
                if last <= now_s && now_s - last < TENANT_HISTORY_S && wide_at <= last =>
            {
                if self.reads.is_multiple_of(REPUBLISH_S as u64) {
                    (wide_at - REPUBLISH_S - 1, true)
                } else {
                    (last - REREAD_S, false)
                }
            }
            _ => (oldest, true),
        };
        let from = from.max(oldest);
        let rows = store.other_nodes_tenant_seconds(from, now_s, None).await?;
        let n = rows.len();
        // Older seconds stay as read; `from..now_s` is what was just read.
        self.others.retain(|_, seconds| {
            seconds.retain(|(s, _)| (oldest..from).contains(s));
            !seconds.is_empty()
        });
        for (second, tenant, _, messages, _) in rows {
            let messages = messages.max(0) as u64;
            let seconds = self.others.entry(tenant.into_boxed_str()).or_default();
            match seconds.last_mut() {
                Some((s, m)) if *s == second => *m += messages,
                _ => seconds.push((second, messages)),
            }
        }
        stats.set_other_nodes(self.others.clone());
        self.read_at = Some(now_s);
        if wide {
            self.wide_at = Some(now_s);
        }
        self.reads += 1;
        Ok(n)
    }
}

/// Adds the other nodes' published counts to this node's throughput, of the
/// platform or of one `tenant` (series, per-channel totals and rates, and
/// the platform's errors), and merges their latency histograms into this
/// node's (platform-wide, as the latency is even with a tenant). Their
/// latest second may lag by about a second.
pub async fn add_other_nodes(
    state: &AppState,
    t: &mut crate::stats::Throughput,
    tenant: Option<&str>,
) {
    let n = t.series.first().map_or(0, |s| s.counts.len());
    if n == 0 || t.bucket_ms <= 0 {
        return;
    }
    // The window's buckets, and the one before it (the rates' complete buckets).
    let from_s = (t.from_ms - t.bucket_ms).div_euclid(1000);
    let current_ms = t.from_ms + (n as i64 - 1) * t.bucket_ms;
    // The current bucket's start picks the same latency slots as the read's
    // own time did: slot widths are whole multiples of the bucket width.
    add_other_nodes_latency(
        state,
        &mut t.per_channel,
        &mut t.ingest_latency_us,
        t.window_ms,
        current_ms,
    )
    .await;
    let to_s = (current_ms + t.bucket_ms).div_euclid(1000);
    let rows = match tenant {
        None => state.store.other_nodes_seconds(from_s, to_s).await,
        Some(id) => state
            .store
            .other_nodes_tenant_seconds(from_s, to_s, Some(id))
            .await
            .map(|rows| {
                rows.into_iter()
                    .map(|(s, _, k, m, b)| (s, k, m, b))
                    .collect()
            }),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "reading the other nodes' figures failed");
            return;
        }
    };
    if rows.is_empty() {
        return;
    }
    let mut complete = vec![0u64; t.series.len()];
    let mut complete_errors = vec![0u64; t.per_channel.len()];
    for (second, k, messages, bytes) in rows {
        let bucket = (second * 1000 - t.from_ms).div_euclid(t.bucket_ms);
        if k >= ERROR_SERIES {
            let c = (k - ERROR_SERIES) as usize;
            let (Some(ch), Some(done)) = (t.per_channel.get_mut(c), complete_errors.get_mut(c))
            else {
                continue;
            };
            if bucket < n as i64 - 1 {
                *done += messages.max(0) as u64;
            }
            if (0..n as i64).contains(&bucket) {
                ch.errors += messages.max(0) as u64;
            }
            continue;
        }
        let (k, messages, bytes) = (k as usize, messages.max(0) as u64, bytes.max(0) as u64);
        let Some(series) = t.series.get_mut(k) else {
            continue;
        };
        if bucket < n as i64 - 1 {
            complete[k] += messages;
        }
        if (0..n as i64).contains(&bucket) {
            series.counts[bucket as usize] += messages;
            if let Some(b) = series.bytes.get_mut(bucket as usize) {
                *b += bytes;
            }
        }
    }
    let span_s = n as f64 * t.bucket_ms as f64 / 1000.0;
    for (series, extra) in t.series.iter_mut().zip(&complete) {
        series.rate_per_s += *extra as f64 / span_s;
    }
    for (ch, extra) in t.per_channel.iter_mut().zip(&complete_errors) {
        ch.errors_per_s += *extra as f64 / span_s;
    }
    for ch in &mut t.per_channel {
        let mine = t.series.iter().filter(|s| s.channel == ch.channel);
        let (mut messages, mut bytes, mut rate) = (0, 0, 0.0);
        for s in mine {
            messages += s.counts.iter().sum::<u64>();
            bytes += s.bytes.iter().sum::<u64>();
            rate += s.rate_per_s;
        }
        (ch.messages, ch.bytes, ch.msgs_per_s) = (messages, bytes, rate);
    }
}

/// Makes the overview's figures all nodes': adds the other nodes' counts
/// to the last-60-seconds figures (messages and errors, per-channel totals
/// and rates, `msgs_per_s`), merges their latency histograms into this
/// node's, and sums the totals since start over the live nodes (see
/// [`figures::apply_totals`]). The active tenants are already a union (the
/// stats' other-nodes overlay).
pub async fn add_other_nodes_to_overview(
    state: &AppState,
    live: &mut c24_api::admin::throughput::OverviewFigures,
    now_ms: i64,
) {
    match state.store.other_live_nodes(now_ms - NODE_LIVE_MS).await {
        Ok(others) => figures::apply_totals(
            live,
            &state.stats.node_totals(),
            state.stats.started_at_ms(),
            &others,
            now_ms,
        ),
        Err(e) => tracing::warn!(error = %e, "reading the other nodes' totals failed"),
    }
    add_other_nodes_latency(
        state,
        &mut live.per_channel,
        &mut live.ingest_latency_us,
        60_000,
        now_ms,
    )
    .await;
    add_other_nodes_recent(state, live, now_ms).await;
}

/// The last-60-seconds counts of [`add_other_nodes_to_overview`].
async fn add_other_nodes_recent(
    state: &AppState,
    live: &mut c24_api::admin::throughput::OverviewFigures,
    now_ms: i64,
) {
    let now_s = now_ms.div_euclid(1000);
    // The 60-second window, and the second before it (complete-bucket rates).
    let rows = match state.store.other_nodes_seconds(now_s - 60, now_s + 1).await {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "reading the other nodes' figures failed");
            return;
        }
    };
    let rate_from = now_s - crate::stats::RATE_WINDOW_S as i64;
    let mut recent = 0u64;
    for (second, k, messages, bytes) in rows {
        let (messages, bytes) = (messages.max(0) as u64, bytes.max(0) as u64);
        if k >= ERROR_SERIES {
            let Some(ch) = live.per_channel.get_mut((k - ERROR_SERIES) as usize) else {
                continue;
            };
            if second > now_s - 60 {
                ch.errors += messages;
                live.errors_last_60s += messages;
            }
            if second < now_s {
                ch.errors_per_s += messages as f64 / 60.0;
            }
            continue;
        }
        let Some(channel) = crate::store::Channel::ALL.get(k as usize / 2) else {
            continue;
        };
        if (rate_from..now_s).contains(&second) {
            recent += messages;
        }
        let Some(ch) = live
            .per_channel
            .iter_mut()
            .find(|c| c.channel == channel.as_str())
        else {
            continue;
        };
        if second > now_s - 60 {
            ch.messages += messages;
            ch.bytes += bytes;
            live.messages_last_60s += messages;
        }
        if second < now_s {
            ch.msgs_per_s += messages as f64 / 60.0;
        }
    }
    live.msgs_per_s += recent as f64 / crate::stats::RATE_WINDOW_S as f64;
}

// The integration tests' throwaway databases, for the unit tests below.
#[cfg(test)]
#[path = "../tests/support/pg.rs"]
#[allow(dead_code)]
mod test_pg;

#[cfg(test)]
mod tests {
    //! The per-tenant exchange against a real PostgreSQL
    //! (`C24_TEST_POSTGRES_URL`; skipped with a message without one, a
    //! failure with `C24_TEST_POSTGRES_REQUIRED=1`).

    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::clock::{Clock, SystemClock};
    use crate::stats::Direction;
    use crate::store::Channel;
    use crate::store::postgres::PgStore;

    use super::test_pg::TestDb;

    async fn store(db: &TestDb) -> PgStore {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        PgStore::open(&db.url, true, clock).await.unwrap()
    }

    const START_S: i64 = 1_800_000_000;

    /// 10,000 tenants' counts, published by A tick by tick (with messages
    /// counted late in older seconds), read by B incrementally: B's history
    /// of every tenant equals A's counts exactly, and so does a read of the
    /// table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ten_thousand_tenants_counts_reach_the_other_node_exactly() {
        let Some(db) = TestDb::create("tenant_exchange").await else {
            return;
        };
        let (a, b) = (store(&db).await, store(&db).await);
        let (stats_a, stats_b) = (
            LiveStats::new(START_S * 1000),
            LiveStats::new(START_S * 1000),
        );
        let (mut ex_a, mut ex_b) = (TenantExchange::default(), TenantExchange::default());
        let tenants: Vec<String> = (0..10_000).map(|i| format!("{i:032x}")).collect();
        let mut expected: HashMap<(usize, i64), u64> = HashMap::new();
        let mut record = |i: usize, second: i64, d: Direction| {
            stats_a.record(
                &tenants[i],
                Channel::Webchat,
                d,
                100,
                1,
                1,
                second * 1000 + 300,
            );
            *expected.entry((i, second)).or_default() += 1;
        };
        let ticks = 12;
        let mut now_s = START_S;
        for tick in 0..ticks + REPUBLISH_S + 1 {
            now_s = START_S + tick;
            if tick < ticks {
                for i in 0..tenants.len() {
                    // 1 to 3 inbound, every 7th tenant an outbound too.
                    for _ in 0..1 + (i + tick as usize) % 3 {
                        record(i, now_s - 1, Direction::Inbound);
                    }
                    if i % 7 == 0 {
                        record(i, now_s - 1, Direction::Outbound);
                    }
                    // Counted late: a second already published once or more.
                    if tick >= 4 && i % 101 == tick as usize {
                        record(i, now_s - 2 - (i as i64 % 3), Direction::Inbound);
                    }
                }
            }
            ex_a.publish(&stats_a, &a, now_s, now_s - 90_000)
                .await
                .unwrap();
            ex_b.refresh(&stats_b, &b, now_s).await.unwrap();
        }
        let first = now_s - 60;
        let mut wrong = Vec::new();
        for (i, t) in tenants.iter().enumerate() {
            let got = stats_b.tenant_figures(t, 60, now_s * 1000).sparkline;
            let want: Vec<u64> = (first..now_s)
                .map(|s| expected.get(&(i, s)).copied().unwrap_or(0))
                .collect();
            if got != want {
                wrong.push(i);
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of 10,000 tenants' histories on B differ from A's counts (first: {:?})",
            wrong.len(),
            wrong.first()
        );
        // The table itself, summed per tenant and second.
        let rows = b
            .other_nodes_tenant_seconds(first, now_s, None)
            .await
            .unwrap();
        let mut stored: HashMap<(usize, i64), u64> = HashMap::new();
        let index: HashMap<&str, usize> = tenants
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i))
            .collect();
        for (second, tenant, _, messages, _) in rows {
            *stored.entry((index[tenant.as_str()], second)).or_default() += messages as u64;
        }
        assert_eq!(stored.len(), expected.len());
        assert!(stored == expected, "the stored counts differ from A's");
        // A's node reads none of its own.
        assert!(
            a.other_nodes_tenant_seconds(first, now_s, None)
                .await
                .unwrap()
                .is_empty()
        );
        a.close().await;
        b.close().await;
        db.drop_db().await;
    }

    /// The batched prune deletes every row before its bound, every node's,
    /// and nothing after it, including rows older than its last bound
    /// deleted by a first (unbounded) prune.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenant_prune_deletes_every_due_row_and_no_other() {
        let Some(db) = TestDb::create("tenant_prune").await else {
            return;
        };
        let a = store(&db).await;
        let sql = db.sql().await;
        let p0 = START_S;
        for node in ["other-1", "other-2"] {
            sql.execute(
                "INSERT INTO node_tenant_seconds (node, second, tenant_id, series, messages, bytes)
                 SELECT $1, s, 't' || t, 0, 1, 1
                 FROM generate_series($2::bigint, $3::bigint) s, generate_series(1, 50) t",
                &[&node, &(p0 - 1000), &(p0 + 99)],
            )
            .await
            .unwrap();
        }
        let count = |below: i64| {
            let sql = &sql;
            async move {
                let below_n: i64 = sql
                    .query_one(
                        "SELECT count(*) FROM node_tenant_seconds WHERE second < $1",
                        &[&below],
                    )
                    .await
                    .unwrap()
                    .get(0);
                let all: i64 = sql
                    .query_one("SELECT count(*) FROM node_tenant_seconds", &[])
                    .await
                    .unwrap()
                    .get(0);
                (below_n, all)
            }
        };
        let per_second = 2 * 50;
        let total = 1100 * per_second;
        // The first prune: everything before its bound.
        a.publish_tenant_seconds(Vec::new(), p0).await.unwrap();
        assert_eq!(count(p0).await, (0, total - 1000 * per_second));
        // Then one every 15 s, from where the last ended.
        for p in p0 + 1..p0 + 15 {
            a.publish_tenant_seconds(Vec::new(), p).await.unwrap();
        }
        assert_eq!(count(p0 + 14).await.1, total - 1000 * per_second);
        a.publish_tenant_seconds(Vec::new(), p0 + 15).await.unwrap();
        assert_eq!(count(p0 + 15).await, (0, total - 1015 * per_second));
        // A jump (a tick skipped, a clock moved on) deletes all in between.
        a.publish_tenant_seconds(Vec::new(), p0 + 90).await.unwrap();
        assert_eq!(count(p0 + 90).await, (0, total - 1090 * per_second));
        a.close().await;
        db.drop_db().await;
    }

    /// New seconds are written with a plain insert, changed ones upserted;
    /// a new second that has rows after all (a commit whose answer was
    /// lost) is upserted instead of failing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tenant_rows_are_inserted_then_rewritten() {
        let Some(db) = TestDb::create("tenant_rows").await else {
            return;
        };
        let a = store(&db).await;
        let sql = db.sql().await;
        let s = START_S;
        let row = |second: i64, t: &str, m: i64| (second, t.to_string(), 0i16, m, m * 10);
        a.publish_tenant_seconds(vec![row(s, "t1", 1)], 0)
            .await
            .unwrap();
        let node: String = sql
            .query_one("SELECT node FROM node_tenant_seconds", &[])
            .await
            .unwrap()
            .get(0);
        sql.execute(
            "INSERT INTO node_tenant_seconds VALUES ($1, $2, 't2', 0, 99, 990)",
            &[&(s + 1), &node],
        )
        .await
        .unwrap();
        a.publish_tenant_seconds(vec![row(s + 1, "t2", 5), row(s + 1, "t3", 7)], 0)
            .await
            .unwrap();
        a.publish_tenant_seconds(vec![row(s, "t1", 2), row(s + 1, "t2", 6)], 0)
            .await
            .unwrap();
        let rows: Vec<(i64, String, i64, i64)> = sql
            .query(
                "SELECT second, tenant_id, messages, bytes FROM node_tenant_seconds ORDER BY 1, 2",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect();
        let want = vec![
            (s, "t1".to_string(), 2, 20),
            (s + 1, "t2".to_string(), 6, 60),
            (s + 1, "t3".to_string(), 7, 70),
        ];
        assert_eq!(rows, want);
        a.close().await;
        db.drop_db().await;
    }
}
