//! The poller: one round per `--refresh`, fetching only what may have
//! changed. The throughput series are fetched every round (they move with
//! every message and are small); the tenant list only when the event
//! stream's tick, a `tenant.changed` event or its own last answer says it
//! changed, else the UI is told it is confirmed idle; slower feeds on their
//! own interval or when an event names them. The compliance registers
//! (data-subject requests and consents per tenant, the breach register)
//! are fetched on their events or every [`COMPLIANCE_EVERY`]; the
//! per-tenant lists only for tenants not purged, [`COMPLIANCE_CONCURRENCY`]
//! requests at a time, carrying on past a tenant that fails. While the event stream is down
//! the overview is fetched here too. When the core cannot be reached the
//! rounds back off exponentially; the console keeps running either way.

use std::time::{Duration, Instant};

use c24_api::admin::consents::Consent;
use c24_api::admin::dsr::Dsr;
use c24_api::admin::tenants::TenantConversationList;
use c24_api::client::{Client, ClientError, TenantQuery};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::{Command, Fingerprint, Hint, SourceMsg, backoff, describe, is_unreachable};
use crate::store::{
    ConversationRow, DetailConversations, Feed, PollState, TenantRecord, TenantStatus,
};

/// How often the retention report is fetched without a hint.
pub const RETENTION_EVERY: Duration = Duration::from_secs(10);
/// How often the sub-processor registry is fetched without a hint.
pub const REGISTRY_EVERY: Duration = Duration::from_secs(30);
/// How often the audit log is fetched without a hint (refused writes leave
/// an audit entry but no event).
pub const AUDIT_EVERY: Duration = Duration::from_secs(10);
/// How often the compliance registers are fetched without a hint (their
/// countdowns are computed by the console; only new records need a fetch).
pub const COMPLIANCE_EVERY: Duration = Duration::from_secs(30);
/// Per-tenant compliance requests in flight at once.
pub const COMPLIANCE_CONCURRENCY: usize = 8;
/// The full tenant list at least this often (open conversations age out).
pub const TENANTS_EVERY: Duration = Duration::from_secs(30);
/// Page size when listing tenants.
pub const TENANT_PAGE: usize = 1000;
/// Audit entries shown.
pub const AUDIT_LIMIT: u32 = 50;
/// Conversations shown in a tenant's detail (the newest).
pub const DETAIL_CONVERSATIONS: u32 = 8;
const BACKOFF_MAX: Duration = Duration::from_secs(15);

/// The throughput window fetched (the sparklines' length).
pub const WINDOW: &str = "60s";

/// State of the poller between rounds.
pub struct Poller {
    client: Client,
    refresh: Duration,
    tx: mpsc::UnboundedSender<SourceMsg>,
    focus: Option<String>,
    stream_up: bool,
    /// The newest tick's fingerprint, and the one the tenant list was fetched at.
    seen: Option<Fingerprint>,
    tenants_at: Option<Fingerprint>,
    tenants_busy: bool,
    tenants_dirty: bool,
    registry_dirty: bool,
    retention_dirty: bool,
    audit_dirty: bool,
    dsr_dirty: bool,
    incidents_dirty: bool,
    consents_dirty: bool,
    /// Tenants not purged, as of the last full tenant list.
    compliance_tenants: Vec<String>,
    last_dsr: Option<Instant>,
    last_incidents: Option<Instant>,
    last_consents: Option<Instant>,
    last_tenants: Option<Instant>,
    last_retention: Option<Instant>,
    last_registry: Option<Instant>,
    last_audit: Option<Instant>,
    failures: u32,
    resume_at: Option<Instant>,
}

impl Poller {
    pub fn new(client: Client, refresh: Duration, tx: mpsc::UnboundedSender<SourceMsg>) -> Self {
        Self {
            client,
            refresh,
            tx,
            focus: None,
            stream_up: false,
            seen: None,
            tenants_at: None,
            tenants_busy: false,
            tenants_dirty: true,
            registry_dirty: true,
            retention_dirty: true,
            audit_dirty: true,
            dsr_dirty: true,
            incidents_dirty: true,
            consents_dirty: true,
            compliance_tenants: Vec::new(),
            last_dsr: None,
            last_incidents: None,
            last_consents: None,
            last_tenants: None,
            last_retention: None,
            last_registry: None,
            last_audit: None,
            failures: 0,
            resume_at: None,
        }
    }

    fn send(&self, m: SourceMsg) {
        let _ = self.tx.send(m);
    }

    fn hint(&mut self, h: Hint) {
        match h {
            Hint::StreamUp(up) => self.stream_up = up,
            Hint::Tick(f) => self.seen = Some(f),
            Hint::TenantChanged => {
                self.tenants_dirty = true;
                self.audit_dirty = true;
                self.retention_dirty = true;
            }
            Hint::RegistryChanged => {
                self.registry_dirty = true;
                self.audit_dirty = true;
            }
            Hint::RetentionChanged => {
                self.retention_dirty = true;
                self.tenants_dirty = true;
                self.audit_dirty = true;
            }
            Hint::DsrChanged => self.dsr_dirty = true,
            Hint::IncidentChanged => self.incidents_dirty = true,
            Hint::ConsentChanged => self.consents_dirty = true,
        }
    }

    fn all_dirty(&mut self) {
        self.tenants_dirty = true;
        self.registry_dirty = true;
        self.retention_dirty = true;
        self.audit_dirty = true;
        self.dsr_dirty = true;
        self.incidents_dirty = true;
        self.consents_dirty = true;
    }

    fn command(&mut self, c: Command) -> bool {
        match c {
            Command::Focus(id) => {
                let changed = self.focus != id;
                self.focus = id;
                changed
            }
            Command::RefreshAll => {
                self.all_dirty();
                self.resume_at = None;
                true
            }
        }
    }

    fn due(last: Option<Instant>, every: Duration, now: Instant) -> bool {
        last.is_none_or(|t| now.saturating_duration_since(t) >= every)
    }

    /// One round. An unreachable core aborts the round and is returned.
    async fn round(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        if !self.stream_up {
            match self.client.overview().await {
                Ok(o) => {
                    self.seen = Some(Fingerprint::of(&o));
                    self.send(SourceMsg::Overview(Box::new(o)));
                }
                Err(e) => self.failed(Feed::Overview, e)?,
            }
        }
        match self.client.throughput(WINDOW, None).await {
            Ok(t) => self.send(SourceMsg::Throughput(Box::new(t))),
            Err(e) => self.failed(Feed::Throughput, e)?,
        }
        let tenants_changed = self.tenants_dirty
            || self.tenants_busy
            || self.seen.is_none()
            || self.seen != self.tenants_at
            || Self::due(self.last_tenants, TENANTS_EVERY, now);
        if tenants_changed {
            let at = self.seen;
            match self.fetch_tenants().await {
                Ok(busy) => {
                    self.tenants_busy = busy;
                    self.tenants_dirty = false;
                    self.tenants_at = at;
                    self.last_tenants = Some(now);
                }
                Err(e) => self.failed(Feed::Tenants, e)?,
            }
        } else {
            self.send(SourceMsg::TenantsIdle);
        }
        if let Some(id) = self.focus.clone() {
            let detail = async {
                let t = self.client.tenant(&id).await?;
                let tp = self.client.throughput(WINDOW, Some(&id)).await?;
                let convs = detail_conversations(
                    self.client
                        .tenant_conversations(&id, DETAIL_CONVERSATIONS)
                        .await,
                )?;
                Ok::<_, ClientError>((t, tp, convs))
            };
            match detail.await {
                Ok((t, tp, convs)) => self.send(SourceMsg::Detail(
                    Box::new(TenantRecord::from(t)),
                    Box::new(tp),
                    convs,
                )),
                Err(e) => self.failed(Feed::Detail, e)?,
            }
        }
        if self.retention_dirty || Self::due(self.last_retention, RETENTION_EVERY, now) {
            match self.client.retention().await {
                Ok(r) => {
                    self.retention_dirty = false;
                    self.last_retention = Some(now);
                    self.send(SourceMsg::Retention(Box::new(r)));
                }
                Err(e) => self.failed(Feed::Retention, e)?,
            }
        }
        if self.registry_dirty || Self::due(self.last_registry, REGISTRY_EVERY, now) {
            match self.client.subprocessors().await {
                Ok(r) => {
                    self.registry_dirty = false;
                    self.last_registry = Some(now);
                    self.send(SourceMsg::Registry(Box::new(r)));
                }
                Err(e) => self.failed(Feed::Registry, e)?,
            }
        }
        if self.audit_dirty || Self::due(self.last_audit, AUDIT_EVERY, now) {
            match self.client.audit(AUDIT_LIMIT, None).await {
                Ok(a) => {
                    self.audit_dirty = false;
                    self.last_audit = Some(now);
                    self.send(SourceMsg::Audit(a.items));
                }
                Err(e) => self.failed(Feed::Audit, e)?,
            }
        }
        if self.incidents_dirty || Self::due(self.last_incidents, COMPLIANCE_EVERY, now) {
            match self.client.incidents().await {
                Ok(l) => {
                    self.incidents_dirty = false;
                    self.last_incidents = Some(now);
                    self.send(SourceMsg::Incidents(l.items));
                }
                Err(e) => self.failed(Feed::Incidents, e)?,
            }
        }
        let dsr = self.dsr_dirty || Self::due(self.last_dsr, COMPLIANCE_EVERY, now);
        let consents = self.consents_dirty || Self::due(self.last_consents, COMPLIANCE_EVERY, now);
        if dsr || consents {
            self.fetch_per_tenant(dsr, consents, now).await?;
        }
        Ok(())
    }

    /// Every tenant's open requests and/or consent withdrawals, a bounded
    /// number of tenants at a time. A tenant that fails is named in the
    /// feed's error and skipped; an unreachable core ends the round after
    /// the batch (what did arrive is still sent).
    async fn fetch_per_tenant(
        &mut self,
        dsr: bool,
        consents: bool,
        now: Instant,
    ) -> Result<(), ClientError> {
        // Owned per request: a borrowing stream is not `Send` for tokio.
        let jobs: Vec<(Client, String)> = self
            .compliance_tenants
            .iter()
            .map(|id| (self.client.clone(), id.clone()))
            .collect();
        let results: Vec<_> = futures_util::stream::iter(jobs)
            .map(|(client, id)| async move {
                let d = if dsr {
                    Some(client.list_dsr(&id).await)
                } else {
                    None
                };
                let c = if consents {
                    Some(client.consents(&id, None).await)
                } else {
                    None
                };
                (d, c)
            })
            .buffer_unordered(COMPLIANCE_CONCURRENCY)
            .collect()
            .await;
        let mut dsrs: Vec<Dsr> = Vec::new();
        let mut open = 0usize;
        let mut withdrawn: Vec<Consent> = Vec::new();
        let mut withdrawals = 0u64;
        let (mut dsr_failed, mut consent_failed) = (0usize, 0usize);
        let mut first_error: Option<ClientError> = None;
        let mut unreachable: Option<ClientError> = None;
        let mut note = |e: ClientError| {
            if is_unreachable(&e) {
                unreachable.get_or_insert(e);
            } else {
                first_error.get_or_insert(e);
            }
        };
        for (d, c) in results {
            match d {
                Some(Ok(l)) => {
                    open += l.open;
                    dsrs.extend(l.items.into_iter().filter(|d| d.completed_at.is_none()));
                }
                Some(Err(e)) => {
                    dsr_failed += 1;
                    note(e);
                }
                None => {}
            }
            match c {
                Some(Ok(l)) => {
                    withdrawals += l.withdrawals;
                    withdrawn.extend(
                        l.items
                            .into_iter()
                            .filter(|c| c.purposes.iter().any(|p| p.withdrawn_at.is_some())),
                    );
                }
                Some(Err(e)) => {
                    consent_failed += 1;
                    note(e);
                }
                None => {}
            }
        }
        let why = unreachable.as_ref().or(first_error.as_ref()).map(describe);
        let failed = |n: usize| {
            (n > 0).then(|| format!("{n} tenant(s) failed: {}", why.clone().unwrap_or_default()))
        };
        if dsr {
            self.send(SourceMsg::Dsrs {
                items: dsrs,
                open,
                failed: failed(dsr_failed),
            });
            if dsr_failed == 0 {
                self.dsr_dirty = false;
                self.last_dsr = Some(now);
            }
        }
        if consents {
            self.send(SourceMsg::Consents {
                items: withdrawn,
                withdrawals,
                failed: failed(consent_failed),
            });
            if consent_failed == 0 {
                self.consents_dirty = false;
                self.last_consents = Some(now);
            }
        }
        match unreachable {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Reports a failed fetch; an unreachable core is passed up.
    fn failed(&self, feed: Feed, e: ClientError) -> Result<(), ClientError> {
        self.send(SourceMsg::FeedError(feed, describe(&e)));
        if is_unreachable(&e) { Err(e) } else { Ok(()) }
    }

    /// Every tenant, a page at a time, each page compacted and sent as it
    /// arrives, so a large platform is never held whole in wire form.
    /// Returns whether any tenant had traffic.
    async fn fetch_tenants(&mut self) -> Result<bool, ClientError> {
        let mut q = TenantQuery {
            limit: Some(TENANT_PAGE),
            ..Default::default()
        };
        let mut first = true;
        let mut busy = false;
        let mut live: Vec<String> = Vec::new();
        loop {
            let page = self.client.query_tenants(&q).await?;
            let records: Vec<TenantRecord> =
                page.items.into_iter().map(TenantRecord::from).collect();
            // Busy while any tenant had a message in the last minute, so
            // the sparklines (the core's 60-second history) keep moving.
            busy |= records.iter().any(TenantRecord::is_busy);
            live.extend(
                records
                    .iter()
                    .filter(|r| r.status != TenantStatus::Purged && r.key_destroyed_at.is_none())
                    .map(|r| r.id.clone()),
            );
            let last = page.next.is_none();
            self.send(SourceMsg::TenantsPage {
                records,
                first,
                last,
            });
            first = false;
            match page.next {
                Some(n) => q.cursor = Some(n),
                None => {
                    self.compliance_tenants = live;
                    return Ok(busy);
                }
            }
        }
    }

    async fn round_and_report(&mut self) {
        let now = Instant::now();
        if self.resume_at.is_some_and(|t| now < t) {
            return;
        }
        match self.round().await {
            Ok(()) => {
                self.failures = 0;
                self.resume_at = None;
                self.send(SourceMsg::Poll(PollState::Reachable));
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let wait = backoff(self.refresh, self.failures, BACKOFF_MAX);
                self.resume_at = Some(Instant::now() + wait);
                // Everything is fetched again once the core is back.
                self.all_dirty();
                self.send(SourceMsg::Poll(PollState::Unreachable {
                    attempt: self.failures,
                    retry_s: wait.as_secs().max(1),
                    error: describe(&e),
                }));
            }
        }
    }
}

pub async fn run(
    mut poller: Poller,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut hints: mpsc::UnboundedReceiver<Hint>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(poller.refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => poller.round_and_report().await,
            Some(c) = commands.recv() => {
                if poller.command(c) {
                    poller.round_and_report().await;
                    tick.reset();
                }
            }
            Some(h) = hints.recv() => {
                let was_up = poller.stream_up;
                poller.hint(h);
                // The stream just came back: the core is back, refresh now.
                if poller.stream_up && !was_up && poller.failures > 0 {
                    poller.resume_at = None;
                    poller.round_and_report().await;
                    tick.reset();
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// The conversations panel from its fetch: a 404 after the tenant itself
/// was found means this core predates the route, so the rest of the
/// detail still shows; any other failure fails the detail.
fn detail_conversations(
    r: Result<TenantConversationList, ClientError>,
) -> Result<DetailConversations, ClientError> {
    match r {
        Ok(list) => Ok(DetailConversations::Rows(
            list.items.into_iter().map(ConversationRow::from).collect(),
        )),
        Err(ClientError::Api { status: 404, .. }) => Ok(DetailConversations::Unavailable),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(status: u16, code: &str) -> ClientError {
        ClientError::Api {
            status,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn a_core_without_the_conversations_route_leaves_the_panel_unavailable() {
        let r = detail_conversations(Err(api_error(404, "not_found")));
        assert!(matches!(r, Ok(DetailConversations::Unavailable)));
        let r = detail_conversations(Err(api_error(404, "unexpected_response")));
        assert!(matches!(r, Ok(DetailConversations::Unavailable)));
    }

    #[test]
    fn other_conversation_failures_still_fail_the_detail() {
        let r = detail_conversations(Err(api_error(500, "internal")));
        assert!(matches!(r, Err(ClientError::Api { status: 500, .. })));
        let r = detail_conversations(Err(api_error(403, "forbidden")));
        assert!(matches!(r, Err(ClientError::Api { status: 403, .. })));
    }

    #[test]
    fn an_answer_becomes_rows() {
        let list = TenantConversationList {
            items: Vec::new(),
            next: None,
        };
        let r = detail_conversations(Ok(list));
        assert!(matches!(r, Ok(DetailConversations::Rows(rows)) if rows.is_empty()));
    }
}
