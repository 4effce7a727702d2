//! The retention engine: the schedule from the privacy policy, the purge
//! worker that deletes due rows in small batches, and crypto-shredding of a
//! terminated tenant's data key once its data is gone.
//!
//! Small batches, each its own writer op, so ingest commits keep flowing
//! between them: a purge never holds the write lock for long.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use c24_api::admin::retention::{CategoryReport, PurgeRun, RetentionReport};

use crate::clock::{Millis, rfc3339};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::{PurgeTable, StoreError, WriteOp, WriteOutcome};
use crate::tenants::TenantEntry;

const DAY_MS: i64 = 86_400_000;
/// End-user data: deleted within 30 days of contract termination.
pub const END_USER_GRACE_MS: i64 = 30 * DAY_MS;
/// Rows per purge or stamping batch.
pub const BATCH: u32 = 500;

/// One retention category of the policy (§6).
#[derive(Debug, Clone, Copy)]
pub struct Category {
    pub id: &'static str,
    pub label: &'static str,
    /// How the policy states the period.
    pub policy: &'static str,
    pub period_days: i64,
    /// Tables holding it (empty: nothing of this kind is stored by this core yet).
    pub tables: &'static [PurgeTable],
}

/// The schedule, as the policy writes it.
pub const CATEGORIES: [Category; 6] = [
    Category {
        id: "end_user_data",
        label: "End-user data",
        policy: "contract termination + 30 days",
        period_days: 30,
        tables: &[
            PurgeTable::Messages,
            PurgeTable::Conversations,
            PurgeTable::Contacts,
            PurgeTable::EmailThreads,
            // A data-subject request's record, export and restriction.
            PurgeTable::DsrRequests,
            PurgeTable::DsrExports,
            PurgeTable::Restrictions,
        ],
    },
    Category {
        id: "access_logs",
        label: "System and access logs",
        policy: "90 days",
        period_days: 90,
        // The audit log, and the traffic trace (operational usage data).
        tables: &[PurgeTable::AuditLog, PurgeTable::TrafficTrace],
    },
    Category {
        id: "backups",
        label: "Encrypted backups",
        policy: "7 days",
        period_days: 7,
        tables: &[],
    },
    Category {
        id: "billing_records",
        label: "Billing and financial records",
        policy: "7 years",
        period_days: 7 * 365,
        tables: &[],
    },
    Category {
        id: "security_incidents",
        label: "Security incident records",
        policy: "at least 3 years from the incident",
        period_days: 3 * 365,
        tables: &[PurgeTable::SecurityIncidents],
    },
    Category {
        id: "consent_records",
        label: "Consent records",
        policy: "consent end + 3 years",
        period_days: 3 * 365,
        tables: &[PurgeTable::ConsentRecords],
    },
];

/// Last run, and serialises runs (manual and scheduled never overlap).
#[derive(Default)]
pub struct PurgeState {
    pub last: Mutex<Option<PurgeRun>>,
    /// Totals since start, for /metrics.
    pub runs: std::sync::atomic::AtomicU64,
    pub rows: std::sync::atomic::AtomicU64,
    /// The latest report, for /metrics and the overview (refreshed in the background).
    pub latest_report: Mutex<Option<RetentionReport>>,
    pub running: tokio::sync::Mutex<()>,
    pub next_at: Mutex<Option<Millis>>,
}

/// Sets `purge_after` on all of a tenant's end-user rows, batch by batch.
pub async fn stamp_tenant(
    app: &AppState,
    tenant_id: &str,
    purge_after: Millis,
) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = match app
            .store
            .write(WriteOp::StampTenantPurge {
                tenant_id: tenant_id.to_string(),
                purge_after,
                batch: BATCH,
            })
            .await?
        {
            WriteOutcome::Count(n) => n,
            _ => 0,
        };
        total += n;
        if n == 0 {
            return Ok(total);
        }
    }
}

/// Destroys the tenant's data key: the stored wrapped DEK first, then the
/// in-memory one. Nothing it sealed can be opened afterwards.
pub async fn shred(app: &AppState, t: &TenantEntry) -> Result<(), ApiError> {
    let now = app.clock.now_ms();
    app.store
        .write(WriteOp::DestroyKey {
            tenant_id: t.id.clone(),
            at: now,
        })
        .await?;
    t.drop_key();
    t.update(|s| {
        s.status = "purged".into();
        s.key_destroyed_at = Some(now);
    });
    app.tenants.bump();
    tracing::info!(tenant = %t.id, "tenant data key destroyed");
    app.events.publish(
        "tenant.changed",
        now,
        serde_json::json!({"id": t.id, "change": "key_destroyed", "status": "purged"}),
    );
    Ok(())
}

/// One purge run: stamps stragglers of terminated tenants, deletes every due
/// row in batches, then shreds keys of tenants whose data is gone.
pub async fn run_purge(app: &AppState, trigger: &str) -> Result<PurgeRun, ApiError> {
    let _one_at_a_time = app.purge.running.lock().await;
    let started = Instant::now();
    let now = app.clock.now_ms();
    let terminated: Vec<_> = app
        .tenants
        .all_unordered()
        .into_iter()
        .filter(|t| t.state().status == "terminated")
        .collect();
    // Rows that raced termination (queued before ingress closed).
    for t in &terminated {
        if let Some(p) = t.state().purge_after {
            stamp_tenant(app, &t.id, p).await?;
        }
    }
    let mut rows = 0u64;
    for table in PurgeTable::ALL {
        loop {
            let batch = match app
                .store
                .write(WriteOp::PurgeBatch {
                    table,
                    now,
                    batch: BATCH,
                })
                .await?
            {
                WriteOutcome::Purged(b) => b,
                _ => break,
            };
            rows += batch.rows;
            if table == PurgeTable::TrafficTrace {
                app.trace_rows.fetch_sub(
                    i64::try_from(batch.rows).unwrap_or(i64::MAX),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            for (tenant, messages, bytes, conversations) in &batch.per_tenant {
                if let Some(t) = app.tenants.get(tenant) {
                    t.usage.add(-messages, -bytes, -conversations);
                }
            }
            if batch.rows < u64::from(BATCH) {
                break;
            }
            // Let queued ingest commits in between batches.
            tokio::task::yield_now().await;
        }
    }
    if let Some(dir) = &app.backup_dir
        && dir.exists()
    {
        match crate::backup::prune(dir, now) {
            Ok(pruned) => rows += pruned.len() as u64,
            Err(e) => tracing::warn!(error = %e, "pruning backups failed"),
        }
    }
    let mut keys_destroyed = Vec::new();
    for t in &terminated {
        let due = t.state().purge_after.is_some_and(|p| p <= now);
        if due && !app.store.tenant_has_data(&t.id).await? {
            shred(app, t).await?;
            keys_destroyed.push(t.id.clone());
        }
    }
    let run = PurgeRun {
        at: rfc3339(now),
        rows_deleted: rows,
        duration_ms: started.elapsed().as_millis() as u64,
        keys_destroyed,
        trigger: trigger.to_string(),
    };
    if let Ok(mut last) = app.purge.last.lock() {
        *last = Some(run.clone());
    }
    app.purge
        .runs
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    app.purge
        .rows
        .fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(rows, keys = run.keys_destroyed.len(), trigger, "purge run");
    app.events.publish(
        "retention.purged",
        now,
        serde_json::to_value(&run).unwrap_or_default(),
    );
    Ok(run)
}

/// The purge worker: every `interval` of real time.
pub async fn worker(app: AppState, interval: Duration) {
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Ok(mut n) = app.purge.next_at.lock() {
            *n = Some(app.clock.now_ms() + interval.as_millis() as i64);
        }
        if let Err(e) = run_purge(&app, "schedule").await {
            tracing::warn!(error = %e.message, "purge run failed");
        }
    }
}

/// Keeps the per-tenant "open conversations" figure fresh without touching
/// the database on every tenants listing.
pub async fn refresher(app: AppState, interval: Duration) {
    let mut shutdown = app.shutdown.clone();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        if let Err(e) = crate::http::admin::subprocessors::advance(&app).await {
            tracing::warn!(error = %e.message, "advancing the registry failed");
        }
        match report(&app).await {
            Ok(r) => {
                if let Ok(mut l) = app.purge.latest_report.lock() {
                    *l = Some(r);
                }
            }
            Err(e) => tracing::warn!(error = %e, "refreshing the retention report failed"),
        }
        let since = app.clock.now_ms() - DAY_MS;
        match app.store.open_conversations(since).await {
            Ok(rows) => {
                if let Ok(mut m) = app.open_conversations.write() {
                    *m = rows.into_iter().collect();
                }
            }
            Err(e) => tracing::warn!(error = %e, "refreshing open conversations failed"),
        }
    }
}

/// Stored messages, their bytes and conversations over all tenants.
fn usage_totals(app: &AppState) -> (i64, i64, i64) {
    app.tenants
        .all_unordered()
        .iter()
        .map(|t| t.usage.get())
        .fold((0, 0, 0), |(m, b, c), (m2, b2, c2)| {
            (m + m2.max(0), b + b2.max(0), c + c2.max(0))
        })
}

/// Fills the backups category from the backup folder's headers.
fn backups_due(dir: &std::path::Path, now: Millis, r: &mut CategoryReport) {
    let list = match crate::backup::list(dir) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "listing backups failed");
            return;
        }
    };
    for (path, h) in list {
        let due = h.created_at_ms + crate::backup::BACKUP_RETENTION_MS;
        r.records += 1;
        r.bytes += std::fs::metadata(&path)
            .map(|m| m.len() as i64)
            .unwrap_or(0);
        if due <= now {
            r.overdue += 1;
            let age = (now - due) / 1000;
            r.oldest_overdue_age_s = Some(r.oldest_overdue_age_s.map_or(age, |a| a.max(age)));
        } else {
            // As for tables: due in 7 days includes due in 24 hours.
            r.due_24h += i64::from(due <= now + DAY_MS);
            r.due_7d += i64::from(due <= now + 7 * DAY_MS);
        }
    }
}

pub async fn report(app: &AppState) -> Result<RetentionReport, StoreError> {
    let now = app.clock.now_ms();
    let mut categories = Vec::with_capacity(CATEGORIES.len());
    for c in CATEGORIES {
        let mut r = CategoryReport {
            category: c.id.into(),
            label: c.label.into(),
            policy: c.policy.into(),
            period_days: c.period_days,
            records: 0,
            bytes: 0,
            overdue: 0,
            due_24h: 0,
            due_7d: 0,
            oldest_overdue_age_s: None,
            tracked: !c.tables.is_empty() || (c.id == "backups" && app.backup_dir.is_some()),
        };
        if c.id == "backups"
            && let Some(dir) = &app.backup_dir
        {
            backups_due(dir, now, &mut r);
        }
        for table in c.tables {
            // Messages, conversations and the traffic trace are the big
            // tables: their totals come from counters kept on commit, purge
            // and erasure, so this report (refreshed every 15 s) never scans
            // them.
            let in_memory = matches!(
                table,
                PurgeTable::Messages | PurgeTable::Conversations | PurgeTable::TrafficTrace
            );
            if *table == PurgeTable::TrafficTrace {
                r.records += app.trace_rows.load(std::sync::atomic::Ordering::Relaxed);
            } else if in_memory {
                let (messages, bytes, conversations) = usage_totals(app);
                if *table == PurgeTable::Messages {
                    r.records += messages;
                    r.bytes += bytes;
                } else {
                    r.records += conversations;
                }
            }
            let d = app.store.due_counts(*table, now, !in_memory).await?;
            r.records += d.records;
            r.bytes += d.bytes;
            r.overdue += d.overdue;
            r.due_24h += d.due_24h;
            r.due_7d += d.due_7d;
            if let Some(o) = d.oldest_overdue {
                let age = (now - o) / 1000;
                r.oldest_overdue_age_s = Some(r.oldest_overdue_age_s.map_or(age, |a| a.max(age)));
            }
        }
        categories.push(r);
    }
    let last_purge = app.purge.last.lock().ok().and_then(|l| l.clone());
    let next_purge_at = app.purge.next_at.lock().ok().and_then(|n| *n).map(rfc3339);
    let tenants_pending_purge = app
        .tenants
        .all_unordered()
        .iter()
        .filter(|t| t.state().status == "terminated")
        .count();
    Ok(RetentionReport {
        now: rfc3339(now),
        categories,
        last_purge,
        next_purge_at,
        purge_interval_s: app.purge_interval.as_secs(),
        tenants_pending_purge,
    })
}
