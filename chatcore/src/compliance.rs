//! What the data-subject, breach and consent records need in memory: the
//! identifiers whose processing is restricted (ingress checks them on every
//! message, so they never cost a database read), and which requests and
//! incidents are still open (for the overview, built every second).
//!
//! The store is the truth; this is loaded from it at start and updated
//! after each commit. With several nodes on one database, a node that
//! commits such a change announces it ([`announce`]) and every other node
//! reloads all of it from the store ([`reload`]), so a restriction filed
//! on one node is enforced by every node's ingress; and a change to a
//! stored document holds [`serial`], a lock of the node and of the
//! database, so changes on two nodes never lose one another. The rules themselves
//! are in [`crate::dsr`], [`crate::incidents`] and [`crate::consent`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};

use chrono::{DateTime, Months, Utc};

use crate::clock::Millis;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{ClusterLock, StoreError};

#[derive(Default)]
pub struct ComplianceState {
    /// Per tenant, the blind indexes of restricted identifiers.
    restricted: RwLock<HashMap<String, HashSet<Vec<u8>>>>,
    /// Any restriction at all: while there is none (the usual case),
    /// ingress checks one flag instead of taking the lock.
    any_restricted: AtomicBool,
    /// Open requests: id → (tenant, due_at).
    open_dsrs: Mutex<HashMap<String, (String, Millis)>>,
    /// Open incidents: id → the earliest deadline still unmet.
    open_incidents: Mutex<HashMap<String, Millis>>,
    /// Serialises read-modify-write of request, incident and consent
    /// documents, so two concurrent changes never lose one another.
    pub lock: tokio::sync::Mutex<()>,
    /// A reload for other nodes' changes is queued and has not read yet
    /// (further events until it does need no reload of their own).
    reload_queued: AtomicBool,
}

impl ComplianceState {
    /// Whether processing of this identifier is restricted for the tenant.
    pub fn is_restricted(&self, tenant_id: &str, ident_bi: &[u8]) -> bool {
        if !self.any_restricted.load(Ordering::Acquire) {
            return false;
        }
        let g = match self.restricted.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.get(tenant_id).is_some_and(|s| s.contains(ident_bi))
    }

    /// 403 `processing_restricted` for a restricted identifier.
    pub fn admit(&self, tenant_id: &str, ident_bi: &[u8]) -> Result<(), ApiError> {
        if self.is_restricted(tenant_id, ident_bi) {
            return Err(restricted_error());
        }
        Ok(())
    }

    pub fn restrict(&self, tenant_id: &str, ident_bi: Vec<u8>) {
        let mut g = match self.restricted.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.entry(tenant_id.to_string()).or_default().insert(ident_bi);
        self.any_restricted.store(true, Ordering::Release);
    }

    /// Undoes [`Self::restrict`] (a restriction whose write failed).
    pub fn lift(&self, tenant_id: &str, ident_bi: &[u8]) {
        let mut g = match self.restricted.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(s) = g.get_mut(tenant_id) {
            s.remove(ident_bi);
        }
    }

    /// Notes a request's deadline while it is open; forgets it once closed.
    pub fn track_dsr(&self, id: &str, tenant_id: &str, due_at: Millis, open: bool) {
        let mut g = match self.open_dsrs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if open {
            g.insert(id.to_string(), (tenant_id.to_string(), due_at));
        } else {
            g.remove(id);
        }
    }

    /// Notes an incident's earliest unmet deadline; `None` once every clock is notified.
    pub fn track_incident(&self, id: &str, next_deadline: Option<Millis>) {
        let mut g = match self.open_incidents.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match next_deadline {
            Some(d) => {
                g.insert(id.to_string(), d);
            }
            None => {
                g.remove(id);
            }
        }
    }

    /// Open requests past their deadline, of tenants whose contract runs.
    pub fn dsr_overdue(&self, now: Millis, ended: impl Fn(&str) -> bool) -> usize {
        let g = match self.open_dsrs.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.values()
            .filter(|(tenant, due)| *due < now && !ended(tenant))
            .count()
    }

    pub fn incidents_open(&self) -> usize {
        match self.open_incidents.lock() {
            Ok(g) => g.len(),
            Err(p) => p.into_inner().len(),
        }
    }
}

pub fn restricted_error() -> ApiError {
    ApiError::forbidden(
        "processing_restricted",
        "processing of this person's data is restricted (data-subject request); nothing was stored",
    )
}

/// Everything [`ComplianceState`] keeps, as read from the store.
#[derive(Default)]
struct Loaded {
    restricted: HashMap<String, HashSet<Vec<u8>>>,
    open_dsrs: HashMap<String, (String, Millis)>,
    open_incidents: HashMap<String, Millis>,
}

async fn read(app: &AppState) -> Result<Loaded, StoreError> {
    let mut l = Loaded::default();
    for (tenant, bi) in app.store.restrictions().await? {
        l.restricted.entry(tenant).or_default().insert(bi);
    }
    for (id, tenant, due) in app.store.open_dsrs().await? {
        l.open_dsrs.insert(id, (tenant, due));
    }
    let mut before = None;
    loop {
        let page = app.store.incidents(1000, before.clone()).await?;
        for r in &page {
            match crate::incidents::IncidentDoc::parse(&r.doc) {
                Ok(doc) => {
                    if let Some(d) = doc.next_deadline() {
                        l.open_incidents.insert(r.id.clone(), d);
                    }
                }
                Err(e) => {
                    tracing::warn!(incident = %r.id, error = %e, "unreadable incident record")
                }
            }
        }
        if page.len() < 1000 {
            return Ok(l);
        }
        before = page.last().map(|r| r.id.clone());
    }
}

impl ComplianceState {
    /// Replaces everything with what the store holds.
    fn replace(&self, l: Loaded) {
        let any = l.restricted.values().any(|s| !s.is_empty());
        {
            let mut g = match self.restricted.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *g = l.restricted;
            self.any_restricted.store(any, Ordering::Release);
        }
        match self.open_dsrs.lock() {
            Ok(mut g) => *g = l.open_dsrs,
            Err(p) => *p.into_inner() = l.open_dsrs,
        }
        match self.open_incidents.lock() {
            Ok(mut g) => *g = l.open_incidents,
            Err(p) => *p.into_inner() = l.open_incidents,
        }
    }
}

/// Loads restrictions, open requests and open incidents from the store.
pub async fn load(app: &AppState) -> Result<(), StoreError> {
    let l = read(app).await?;
    app.compliance.replace(l);
    Ok(())
}

/// Reloads it all after another node's change (or missed events), in a
/// task of its own: it waits for [`ComplianceState::lock`], which this
/// node's own changes hold from before their commit until memory follows
/// it (so a reload never drops one of them), and the cluster events behind
/// it must not wait as long. Events arriving before the queued reload reads
/// are covered by it.
pub fn reload(app: &AppState) {
    if app.compliance.reload_queued.swap(true, Ordering::AcqRel) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        let _serial = app.compliance.lock.lock().await;
        app.compliance.reload_queued.store(false, Ordering::Release);
        match read(&app).await {
            Ok(l) => app.compliance.replace(l),
            Err(e) => {
                tracing::warn!(error = %e, "reloading restrictions and open requests failed")
            }
        }
    });
}

/// Key of the database lock over request, incident and consent
/// documents ("c24cmp").
const CLUSTER_LOCK: i64 = 0x6332_3463_6d70;

/// Held for a read-modify-write of a request, incident or consent
/// document: no other change of one runs meanwhile, on this node or
/// (several nodes on one database) on any other.
pub struct Serial<'a> {
    _cluster: Option<ClusterLock>,
    _local: tokio::sync::MutexGuard<'a, ()>,
}

/// Takes this node's lock, then the database's.
pub async fn serial(app: &AppState) -> Result<Serial<'_>, ApiError> {
    let local = app.compliance.lock.lock().await;
    let cluster = app.store.cluster_lock(CLUSTER_LOCK).await?;
    Ok(Serial {
        _cluster: cluster,
        _local: local,
    })
}

/// `ms` plus `months` calendar months (the 31st of a short month clamps to
/// its last day), by UTC.
pub fn add_months(ms: Millis, months: u32) -> Option<Millis> {
    DateTime::<Utc>::from_timestamp_millis(ms)?
        .checked_add_months(Months::new(months))
        .map(|d| d.timestamp_millis())
}

/// Parses an RFC 3339 timestamp to milliseconds.
pub fn parse_time(s: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.timestamp_millis())
}

/// 422 `invalid_field`.
pub fn invalid_field(message: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
        message,
    )
}

/// A required text field: trimmed, 1 to `max` characters.
pub fn text_field(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(invalid_field(format!(
            "{name} must be 1 to {max} characters"
        )));
    }
    Ok(v.to_string())
}

/// A list of text entries: each 1 to `max` characters, at most `max_items`,
/// duplicates dropped, order kept.
pub fn text_list(
    name: &str,
    values: &[String],
    max: usize,
    max_items: usize,
    at_least_one: bool,
) -> Result<Vec<String>, ApiError> {
    if values.len() > max_items || (at_least_one && values.is_empty()) {
        return Err(invalid_field(format!(
            "{name} must hold {} to {max_items} entries",
            usize::from(at_least_one)
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        let v = text_field(name, v, max)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Millis {
        parse_time(s).unwrap_or_default()
    }

    #[test]
    fn calendar_months_clamp_to_the_month_end() {
        assert_eq!(
            add_months(at("2025-01-31T10:00:00Z"), 1),
            Some(at("2025-02-28T10:00:00Z"))
        );
        assert_eq!(
            add_months(at("2024-01-31T10:00:00Z"), 1),
            Some(at("2024-02-29T10:00:00Z"))
        );
        assert_eq!(
            add_months(at("2025-03-15T00:00:00Z"), 3),
            Some(at("2025-06-15T00:00:00Z"))
        );
        assert_eq!(
            add_months(at("2025-03-15T00:00:00Z"), 36),
            Some(at("2028-03-15T00:00:00Z"))
        );
    }

    #[test]
    fn restrictions_are_per_tenant() {
        let s = ComplianceState::default();
        s.restrict("t1", vec![1, 2]);
        assert!(s.is_restricted("t1", &[1, 2]));
        assert!(!s.is_restricted("t2", &[1, 2]));
        assert_eq!(
            s.admit("t1", &[1, 2]).err().map(|e| e.code),
            Some("processing_restricted")
        );
    }

    #[test]
    fn overdue_requests_skip_ended_tenants() {
        let s = ComplianceState::default();
        s.track_dsr("a", "t1", 10, true);
        s.track_dsr("b", "t2", 10, true);
        s.track_dsr("c", "t1", 100, true);
        assert_eq!(s.dsr_overdue(50, |_| false), 2);
        assert_eq!(s.dsr_overdue(50, |t| t == "t2"), 1);
        s.track_dsr("a", "t1", 10, false);
        assert_eq!(s.dsr_overdue(50, |_| false), 1);
    }
}
