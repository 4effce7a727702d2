//! Fixed data for snapshot tests and the render benchmark: a store filled
//! as if a core had answered, with every value (including the core's
//! clock) fixed, so a frame drawn from it is the same on every run.

use std::time::{Duration, Instant};

use c24_api::admin::audit::AuditEntry;
use c24_api::admin::consents::Consent;
use c24_api::admin::dsr::Dsr;
use c24_api::admin::events::Event;
use c24_api::admin::incidents::Incident;
use c24_api::admin::overview::Overview;
use c24_api::admin::retention::RetentionReport;
use c24_api::admin::subprocessors::RegistryList;
use c24_api::admin::tenants::{Tenant, TenantConversation};
use c24_api::admin::throughput::Throughput;
use serde_json::{Value, json};

use crate::store::{ConversationRow, DetailConversations, Store, TenantRecord};

/// The core's clock in the fixtures.
pub const NOW: &str = "2026-03-01T12:00:00Z";

fn parse<T: serde::de::DeserializeOwned>(v: Value) -> T {
    // Fixed literals below; a mismatch is a bug in this file.
    serde_json::from_value(v)
        .unwrap_or_else(|e| panic!("fixture does not match the wire type: {e}"))
}

pub fn tenant_id(i: usize) -> String {
    format!("01960000000070008000{:012x}", i + 1)
}

const NAMES: [(&str, &str, bool, &str); 12] = [
    ("Acme Retail", "active", true, "retained"),
    ("Bakkerij de Vries", "active", true, "retained"),
    ("Nordic Ferries", "active", true, "retained"),
    ("Helios Energy", "active", true, "retained"),
    ("Lumen Health", "active", true, "retained"),
    ("Kiosk & Co", "active", true, "retained"),
    ("Orbit Telecom", "active", true, "retained"),
    ("Vega Travel", "suspended", true, "retained"),
    ("Mistral Foods", "suspended", true, "retained"),
    ("Zephyr Labs", "active", false, "retained"),
    ("Quill Insurance", "terminated", true, "purge_scheduled"),
    ("Overdue Outfitters", "terminated", true, "overdue"),
];

/// Tenant `i` of a platform; the first twelve are the named demo tenants.
pub fn tenant(i: usize) -> Tenant {
    let (name, status, dpa, retention) = NAMES
        .get(i)
        .copied()
        .unwrap_or(("", "active", true, "retained"));
    let name = if name.is_empty() {
        format!("Tenant {i:05}")
    } else {
        name.to_string()
    };
    let id = tenant_id(i);
    let (terminated, purge_after) = match retention {
        "purge_scheduled" => (Some("2026-02-20T09:00:00Z"), Some("2026-03-22T09:00:00Z")),
        "overdue" => (Some("2026-01-20T09:00:00Z"), Some("2026-02-19T09:00:00Z")),
        _ => (None, None),
    };
    let rate = if status == "active" && dpa {
        ((i * 7) % 13) as f64 / 10.0
    } else {
        0.0
    };
    // A minute of per-second counts averaging about `rate`, with a burst
    // now and then (empty when idle).
    let tenths = (rate * 10.0).round() as usize;
    let history: Vec<u32> = if rate > 0.0 {
        (0..60)
            .map(|s| {
                u32::from((s * 7 + i * 3) % 10 < tenths)
                    + u32::from((s + i * 4).is_multiple_of(17)) * 2
            })
            .collect()
    } else {
        Vec::new()
    };
    parse(json!({
        "id": id,
        "name": name,
        "dpa_signed": dpa,
        "dpa_signed_at": if dpa { Some("2026-01-05T10:00:00Z") } else { None },
        "status": status,
        "created_at": "2026-01-05T09:00:00Z",
        "channels": {
            "webchat": true,
            "whatsapp": {"phone_number_id": format!("1{:014}", 31_600_000_000u64 + i as u64)},
            "email": {"address": format!("inbox-{}@inbound.c24.local", &id[20..])}
        },
        "terminated_at": terminated,
        "purge_after": purge_after,
        "key_destroyed_at": null,
        "msgs_per_s": rate,
        "msgs_per_sec_history": history,
        "open_conversations": (i * 3) % 17,
        "conversations": (i * 5) % 40 + 2,
        "stored_messages": (i * 97) % 5000 + 10,
        "stored_bytes": ((i * 7919) % 900_000 + 1200) as i64,
        "retention_state": retention,
    }))
}

pub fn overview() -> Overview {
    let ch = |name: &str, rate: f64, errors: u64, p99: u64| {
        json!({
            "channel": name, "messages": 120, "bytes": 9000, "msgs_per_s": rate,
            "errors": errors, "errors_per_s": errors as f64 / 60.0,
            "ingest_latency_us": {"count": 120, "p50": 900, "p90": 1500, "p99": p99, "p999": p99 * 2, "max": p99 * 3, "mean": 1000.0},
            "encrypt_ns_per_msg": 4200.0
        })
    };
    parse(json!({
        "started_at": "2026-03-01T08:00:00Z",
        "uptime_s": 14_400,
        "messages_total": 48_210,
        "bytes_total": 3_912_044,
        "messages_last_60s": 212,
        "msgs_per_s": 3.5,
        "per_channel": [ch("webchat", 2.0, 0, 2100), ch("whatsapp", 1.0, 2, 3800), ch("email", 0.5, 0, 5200)],
        "ingest_latency_us": {"count": 212, "p50": 950, "p90": 1800, "p99": 4100, "p999": 8000, "max": 12000, "mean": 1100.0},
        "errors_total": 14,
        "errors_last_60s": 2,
        "active_tenants_last_60s": 7,
        "tenants_tracked": 9,
        "tenants": {"total": 12, "active": 8, "suspended": 2, "terminated": 2, "purged": 0, "without_dpa": 1},
        "retention_overdue": 37,
        "registry_pending": 2,
        "registry_flagged": 1,
        "registry_awaiting_approval": 1,
        "incidents_open": 2,
        "now": NOW
    }))
}

fn counts(seed: usize, scale: u64) -> Vec<u64> {
    (0..60)
        .map(|i| ((i * 7 + seed * 3) % 5) as u64 * scale + ((i + seed) % 3) as u64)
        .collect()
}

pub fn throughput() -> Throughput {
    let mut series = Vec::new();
    for (c, ch) in ["webchat", "whatsapp", "email"].iter().enumerate() {
        for (d, dir) in ["inbound", "outbound"].iter().enumerate() {
            let seed = c * 2 + d;
            let scale = [3, 1, 1][c] as u64;
            let counts = counts(seed, scale);
            let bytes: Vec<u64> = counts.iter().map(|n| n * 80).collect();
            let rate = [2.5, 0.8, 0.4][c] / (d as f64 + 1.0);
            series.push(json!({"channel": ch, "direction": dir, "counts": counts, "bytes": bytes, "rate_per_s": rate}));
        }
    }
    let ov = overview();
    parse(json!({
        "window_ms": 60_000, "bucket_ms": 1_000, "from_ms": 1_772_366_340_000i64, "tenant": null,
        "series": series,
        "ingest_latency_us": {"count": 212, "p50": 950, "p90": 1800, "p99": 4100, "p999": 8000, "max": 12000, "mean": 1100.0},
        "latency_window_ms": 60_000,
        "per_channel": ov.live.per_channel,
    }))
}

pub fn retention() -> RetentionReport {
    let cat = |category: &str,
               label: &str,
               policy: &str,
               days: i64,
               tracked: bool,
               records: i64,
               overdue: i64,
               due_24h: i64,
               due_7d: i64,
               oldest: Option<i64>| {
        json!({"category": category, "label": label, "policy": policy, "period_days": days,
               "records": records, "bytes": records * 180, "overdue": overdue, "due_24h": due_24h, "due_7d": due_7d,
               "oldest_overdue_age_s": oldest, "tracked": tracked})
    };
    parse(json!({
        "now": NOW,
        "categories": [
            cat("end_user_data", "End-user data", "contract termination + 30 days", 30, true, 48_210, 37, 0, 212, Some(945_000)),
            cat("access_logs", "System and access logs", "90 days", 90, true, 1_204, 0, 3, 18, None),
            cat("backups", "Backups", "7 days", 7, false, 0, 0, 0, 0, None),
            cat("billing", "Billing records", "7 years", 2555, false, 0, 0, 0, 0, None),
            cat("security_incidents", "Security incident records", "at least 3 years", 1095, false, 0, 0, 0, 0, None),
            cat("consent", "Consent records", "consent end + 3 years", 1095, false, 0, 0, 0, 0, None),
        ],
        "last_purge": {"at": "2026-03-01T06:00:00Z", "rows_deleted": 1_830, "duration_ms": 412, "keys_destroyed": [tenant_id(20)], "trigger": "schedule"},
        "next_purge_at": "2026-03-01T18:00:00Z",
        "purge_interval_s": 21_600,
        "tenants_pending_purge": 2
    }))
}

pub fn registry() -> RegistryList {
    let entry = |id: &str,
                 name: &str,
                 category: &str,
                 location: &str,
                 class: &str,
                 safeguard: &str,
                 status: &str,
                 effective: &str,
                 flags: Vec<&str>,
                 objections: Vec<Value>| {
        let n = objections.len();
        json!({
            "id": id, "name": name, "category": category, "purpose": format!("{category} for the platform"),
            "location": location, "location_class": class, "safeguard": safeguard,
            "data_categories": ["message content", "contact details"], "status": status,
            "announced_at": "2025-12-01T09:00:00Z", "effective_at": effective, "retired_at": null,
            "flags": flags, "pending_change": null, "objections": objections, "objection_count": n,
            "history": [
                {"at": "2025-12-01T09:00:00Z", "event": "announced", "detail": {}, "effective_at": effective},
            ]
        })
    };
    let objection = |i: usize, reason: &str| json!({"tenant_id": tenant_id(i), "reason": reason, "at": "2026-02-27T10:00:00Z"});
    parse(json!({
        "items": [
            entry("sp-aws", "Amazon Web Services", "Cloud Infrastructure", "Germany", "eea", "EEA", "active", "2025-01-01T00:00:00Z", vec![], vec![]),
            entry("sp-cf", "Cloudflare", "Security & Anti-malware", "Global", "global", "SCC", "active", "2025-01-01T00:00:00Z", vec![], vec![]),
            entry("sp-slack", "Slack", "Collaboration Tools", "United States", "third_country", "SCC + DPF", "active", "2025-01-01T00:00:00Z", vec![], vec![]),
            ({
                let mut dd = entry("sp-dd", "Datadog", "Monitoring & Logging", "Netherlands", "eea", "EEA", "active", "2025-01-01T00:00:00Z", vec![], vec![]);
                dd["pending_change"] = json!({
                    "announced_at": "2026-02-10T09:00:00Z", "effective_at": "2026-03-12T09:00:00Z",
                    "purpose": "Monitoring, logging and uptime checks", "flags": [],
                    "approval": "approved", "approved_at": "2026-02-11T10:00:00Z", "approved_by": "ada",
                });
                dd
            }),
            entry("sp-meta", "Meta (WhatsApp)", "Communication Channels", "Ireland", "eea", "EEA", "active", "2025-01-01T00:00:00Z", vec![], vec![]),
            ({
                let mut atlas = entry("sp-atlas", "Atlas Translate", "Collaboration Tools", "Singapore", "third_country", "none", "proposed", "2026-04-10T12:00:00Z",
                      vec!["transfer_without_safeguard"],
                      vec![objection(0, "no transfers without SCCs"), objection(4, "patient data must stay in the EEA")]);
                atlas["approval"] = json!("pending");
                atlas
            }),
        ],
        "pending": 2,
        "flagged": 1,
        "notice_days": 30,
        "awaiting_approval": 1
    }))
}

pub fn audit() -> Vec<AuditEntry> {
    let e = |id: i64, at: &str, action: &str, target: String, status: u16, outcome: &str| {
        json!({"id": id, "at": at, "actor": "bootstrap-admin", "role": "admin", "action": action,
               "target": target, "status": status, "outcome": outcome, "purge_after": "2026-05-30T00:00:00Z"})
    };
    parse(json!([
        e(
            7,
            "2026-03-01T11:58:00Z",
            "tenants.suspend",
            tenant_id(8),
            200,
            "ok"
        ),
        e(
            6,
            "2026-03-01T11:40:00Z",
            "tenants.terminate",
            tenant_id(10),
            401,
            "mfa_invalid"
        ),
        e(
            5,
            "2026-03-01T11:39:00Z",
            "tenants.terminate",
            tenant_id(10),
            200,
            "ok"
        ),
        e(
            4,
            "2026-03-01T11:30:00Z",
            "subprocessors.announce",
            "sp-atlas".into(),
            201,
            "ok"
        ),
        e(
            3,
            "2026-03-01T11:20:00Z",
            "tenants.create",
            tenant_id(11),
            201,
            "ok"
        ),
    ]))
}

/// Data-subject requests as the per-tenant lists give them: one overdue,
/// one due within days, one extended, one not yet due, one completed (not
/// shown).
pub fn dsrs() -> Vec<Dsr> {
    let d = |id: &str,
             tenant: usize,
             kind: &str,
             subject: &str,
             status: &str,
             received: &str,
             due: &str,
             initial: &str,
             left: i64,
             extensions: Vec<Value>| {
        json!({
            "id": id, "tenant_id": tenant_id(tenant), "type": kind, "subject_kind": subject,
            "status": status, "received_at": received, "due_at": due, "initial_due_at": initial,
            "overdue": left < 0 && status != "completed", "seconds_left": left,
            "extensions": extensions,
            "completed_at": if status == "completed" { Some("2026-02-20T10:00:00Z") } else { None },
            "outcome": null, "export": null, "requested_by": format!("tenant:{}", tenant_id(tenant)),
            "history": [{"at": received, "event": "filed", "actor": format!("tenant:{}", tenant_id(tenant))}]
        })
    };
    let ext = json!({"months": 1, "reason": "many requests this month", "person_informed_at": "2026-01-10T09:00:00Z",
                     "recorded_at": "2026-01-10T09:05:00Z", "due_at": "2026-03-20T08:00:00Z"});
    parse(json!([
        d(
            "dsr-1",
            4,
            "access",
            "phone",
            "received",
            "2026-02-12T10:00:00Z",
            "2026-03-12T10:00:00Z",
            "2026-03-12T10:00:00Z",
            950_400,
            vec![]
        ),
        d(
            "dsr-2",
            0,
            "erasure",
            "email",
            "received",
            "2026-01-27T09:00:00Z",
            "2026-02-27T09:00:00Z",
            "2026-02-27T09:00:00Z",
            -183_600,
            vec![]
        ),
        d(
            "dsr-3",
            2,
            "portability",
            "visitor_id",
            "extended",
            "2025-12-20T08:00:00Z",
            "2026-03-20T08:00:00Z",
            "2026-01-20T08:00:00Z",
            1_628_000,
            vec![ext]
        ),
        d(
            "dsr-4",
            1,
            "rectification",
            "email",
            "received",
            "2026-02-03T12:00:00Z",
            "2026-03-03T12:00:00Z",
            "2026-03-03T12:00:00Z",
            172_800,
            vec![]
        ),
        d(
            "dsr-5",
            0,
            "access",
            "email",
            "completed",
            "2026-02-01T09:00:00Z",
            "2026-03-01T09:00:00Z",
            "2026-03-01T09:00:00Z",
            700_000,
            vec![]
        ),
    ]))
}

/// The breach register: one open with a controller notified, one with an
/// overdue controller clock and a late notice to the people, one closed.
pub fn incidents() -> Vec<Incident> {
    let ctl = |i: usize, deadline: &str, notified: Option<&str>, left: i64| {
        json!({"tenant_id": tenant_id(i), "deadline_at": deadline, "notified_at": notified,
               "overdue": notified.is_none() && left < 0, "seconds_left": left})
    };
    let clock = |deadline: &str, notified: Option<&str>, left: i64| {
        json!({"deadline_at": deadline, "notified_at": notified,
               "overdue": notified.is_none() && left < 0, "seconds_left": left})
    };
    let inc = |id: &str,
               aware: &str,
               nature: &str,
               tenants: Vec<usize>,
               platform: bool,
               high: bool,
               clocks: Value,
               open: bool,
               overdue: bool| {
        json!({
            "id": id, "aware_at": aware, "recorded_at": aware, "recorded_by": "bootstrap-admin",
            "nature": nature, "categories": ["message bodies"], "records": 1200, "subjects": 300,
            "affected_tenants": tenants.iter().map(|i| tenant_id(*i)).collect::<Vec<_>>(),
            "consequences": "exposure of chat content", "measures": "access revoked, keys rotated",
            "platform_is_controller": platform, "high_risk": high, "clocks": clocks,
            "open": open, "overdue": overdue, "notifications": [], "purge_after": "2029-03-01T00:00:00Z"
        })
    };
    parse(json!([
        inc(
            "inc-3",
            "2026-02-28T22:00:00Z",
            "Export bucket readable without authentication",
            vec![0, 2],
            true,
            false,
            json!({"controllers": [
                      ctl(0, "2026-03-02T22:00:00Z", Some("2026-03-01T09:30:00Z"), 131_400),
                      ctl(2, "2026-03-02T22:00:00Z", None, 122_400)],
                   "authority": clock("2026-03-03T22:00:00Z", None, 208_800),
                   "subjects": null}),
            true,
            false
        ),
        inc(
            "inc-2",
            "2026-02-26T08:00:00Z",
            "Agent laptop with cached transcripts stolen",
            vec![5],
            false,
            true,
            json!({"controllers": [ctl(5, "2026-02-28T08:00:00Z", None, -100_800)],
                   "authority": null,
                   "subjects": clock("2026-02-26T08:00:00Z", Some("2026-02-27T10:00:00Z"), -93_600)}),
            true,
            true
        ),
        inc(
            "inc-1",
            "2026-01-10T09:00:00Z",
            "Misrouted email reply to another customer",
            vec![3],
            false,
            false,
            json!({"controllers": [ctl(3, "2026-01-12T09:00:00Z", Some("2026-01-10T15:00:00Z"), 151_200)],
                   "authority": null, "subjects": null}),
            false,
            false
        ),
    ]))
}

/// Consent records: one with a purpose withdrawn, one withdrawn entirely,
/// one standing (not shown).
pub fn consents() -> Vec<Consent> {
    let c = |id: &str, tenant: usize, subject: &str, purposes: Value, status: &str| {
        json!({
            "id": id, "tenant_id": tenant_id(tenant), "subject_kind": subject, "purposes": purposes,
            "collection_method": "chat widget banner", "policy_version": "2026-01",
            "given_at": "2026-01-15T10:00:00Z",
            "withdrawn_at": if status == "withdrawn" { Some("2026-02-25T14:00:00Z") } else { None },
            "status": status, "purge_after": null, "recorded_by": format!("tenant:{}", tenant_id(tenant))
        })
    };
    let p = |purpose: &str, withdrawn: Option<&str>| json!({"purpose": purpose, "given_at": "2026-01-15T10:00:00Z", "withdrawn_at": withdrawn});
    parse(json!([
        c(
            "con-1",
            0,
            "email",
            json!([
                p("marketing email", Some("2026-03-01T08:15:00Z")),
                p("product updates", None)
            ]),
            "given"
        ),
        c(
            "con-2",
            6,
            "phone",
            json!([p("whatsapp offers", Some("2026-02-25T14:00:00Z"))]),
            "withdrawn"
        ),
        c(
            "con-3",
            1,
            "visitor_id",
            json!([p("chat history", None)]),
            "given"
        ),
    ]))
}

pub fn events() -> Vec<Event> {
    parse(json!([
        {"kind": "tenant.changed", "at": "2026-03-01T11:40:00Z", "data": {"id": tenant_id(10), "change": "terminated", "status": "terminated"}},
        {"kind": "registry.changed", "at": "2026-03-01T11:50:00Z", "data": {"id": "sp-atlas", "name": "Atlas Translate", "event": "objection"}},
        {"kind": "retention.purged", "at": "2026-03-01T11:55:00Z", "data": {"at": "2026-03-01T11:55:00Z", "rows_deleted": 0, "duration_ms": 3, "keys_destroyed": [], "trigger": "schedule"}},
        {"kind": "tenant.changed", "at": "2026-03-01T11:58:00Z", "data": {"id": tenant_id(8), "change": "suspended", "status": "suspended"}},
    ]))
}

/// A store holding the fixed platform with `tenants` tenants, every feed
/// fresh as of `now`.
pub fn store_at(tenants: usize, redact: bool, now: Instant) -> Store {
    let mut s = Store::new(Duration::from_secs(1), redact);
    s.set_stream_up(true, now);
    s.set_poll(crate::store::PollState::Reachable, now);
    s.set_overview(&overview(), now);
    s.set_throughput(&throughput(), now);
    let records: Vec<TenantRecord> = (0..tenants)
        .map(|i| TenantRecord::from(tenant(i)))
        .collect();
    s.set_tenants(records, now);
    s.set_retention(retention(), now);
    s.set_registry(registry(), now);
    s.set_audit(audit(), now);
    s.set_dsrs(dsrs(), 4, None, now);
    s.set_incidents(incidents(), now);
    s.set_consents(consents(), 2, None, now);
    for e in events() {
        s.push_event(&e, now);
    }
    s.tick(now);
    s
}

/// The twelve named tenants.
pub fn store(redact: bool) -> Store {
    store_at(12, redact, Instant::now())
}

/// Tenant `i`'s newest conversations, one per channel and an idle one.
pub fn conversations(i: usize) -> Vec<ConversationRow> {
    let c = |n: usize, channel: &str, status: &str, count: i64, last: &str| {
        json!({"id": format!("0196{:04x}{:024x}", i, n), "channel": channel, "status": status,
               "message_count": count, "created_at": "2026-02-27T08:00:00Z", "last_activity_at": last})
    };
    let list: Vec<TenantConversation> = parse(json!([
        c(4, "webchat", "open", 12, "2026-03-01T11:58:00Z"),
        c(3, "whatsapp", "open", 5, "2026-03-01T11:41:00Z"),
        c(2, "email", "open", 2, "2026-03-01T09:15:00Z"),
        c(1, "webchat", "idle", 31, "2026-02-27T16:02:00Z"),
    ]));
    list.into_iter().map(ConversationRow::from).collect()
}

/// A detail view of tenant `i` on top of [`store`].
pub fn focus_tenant(s: &mut Store, i: usize, now: Instant) {
    let id = tenant_id(i);
    s.focus(Some(&id));
    let mut tp = throughput();
    tp.tenant = Some(id.clone());
    s.set_detail(
        TenantRecord::from(tenant(i)),
        &tp,
        DetailConversations::Rows(conversations(i)),
        now,
    );
}
