//! The sub-processor registry over HTTP (seeded from the policy, notice
//! period, flags, objections, approval, JSON Feed, effective dates by the
//! dev clock), and the live figures (throughput, overview, SSE events,
//! /metrics).

use std::time::Duration;

use c24_api::client::webchat::WebchatClient;
use c24_e2e::{Core, TotpCodes, TotpPool, WAIT, dev_clock_with_totp, write_tokens_file};
use futures_util::StreamExt;
use serde_json::{Value, json};

const ADMIN_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

async fn start() -> anyhow::Result<Core> {
    Core::start_with(dev_clock_with_totp(ADMIN_TOTP)).await
}

/// A core with a pool of `n` admin tokens for privileged writes.
async fn start_with_pool(n: usize) -> anyhow::Result<(Core, TotpPool, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (tokens_file, _) = write_tokens_file(dir.path())?;
    let pool = TotpPool::add_to(&tokens_file, "reg", "admin", n)?;
    let core = Core::start_with(|c| {
        *c = c.clone().with_dev_clock();
        c.tokens_file = Some(tokens_file);
    })
    .await?;
    Ok((core, pool, dir))
}

/// A privileged POST with a fresh code from the pool.
async fn post_pooled(
    core: &Core,
    pool: &mut TotpPool,
    path: &str,
    body: Value,
) -> anyhow::Result<(u16, Value)> {
    let (token, code) = pool.code()?;
    core.post_json(path, &body, Some(&token), Some(&code)).await
}

fn entry(list: &Value, id: &str) -> Value {
    list["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id))
        .cloned()
        .unwrap_or_default()
}

async fn get(core: &Core, path: &str) -> anyhow::Result<Value> {
    core.get_json(path, None).await
}

async fn post(
    core: &Core,
    path: &str,
    body: Value,
    totp: Option<String>,
) -> anyhow::Result<(u16, Value)> {
    core.post_json(path, &body, None, totp.as_deref()).await
}

fn rfc3339_in(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

c24_e2e::both! {
async fn registry_is_seeded_announces_with_notice_flags_and_takes_effect() -> anyhow::Result<()> {
    let core = start().await?;
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    let list = get(&core, "/admin/v1/subprocessors").await?;
    let cats: Vec<_> = list["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["category"].as_str()).collect())
        .unwrap_or_default();
    for c in [
        "Cloud Infrastructure",
        "Security & Anti-malware",
        "Collaboration Tools",
        "Monitoring & Logging",
        "Communication Channels",
    ] {
        assert!(cats.contains(&c), "{c} not seeded: {cats:?}");
    }

    let announce = |effective_at: String, location: &str, safeguard: &str| {
        json!({
            "name": "Acme Translation Ltd",
            "category": "Communication Channels",
            "purpose": "Machine translation of chat messages",
            "location": location,
            "safeguard": safeguard,
            "data_categories": ["chat messages"],
            "effective_at": effective_at,
        })
    };
    // Inside the notice period: refused, nothing added.
    let (status, v) = post(
        &core,
        "/admin/v1/subprocessors",
        announce(rfc3339_in(10), "India", "DPA"),
        Some(codes.code()?),
    )
    .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (422, Some("notice_period"))
    );
    let count = |v: &Value| v["items"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(
        count(&get(&core, "/admin/v1/subprocessors").await?),
        count(&list)
    );

    // 31 days out, outside the EEA without SCC: accepted and flagged.
    let (status, sp) = post(
        &core,
        "/admin/v1/subprocessors",
        announce(rfc3339_in(31), "India", "DPA"),
        Some(codes.code()?),
    )
    .await?;
    assert_eq!(status, 201, "{sp}");
    assert_eq!(sp["status"], "proposed");
    assert_eq!(sp["approval"], "pending");
    assert_eq!(sp["flags"], json!(["transfer_without_safeguard"]));
    let id = sp["id"].as_str().unwrap_or_default().to_string();

    // A tenant objects with its own key; counted once.
    let t = core.tenant("Objector", true).await?;
    for _ in 0..2 {
        let resp = core
            .http
            .post(format!(
                "{}/admin/v1/subprocessors/{id}/objections",
                core.url()
            ))
            .bearer_auth(&t.api_key)
            .json(&json!({"tenant_id": t.id, "reason": "no transfers to third countries"}))
            .send()
            .await?;
        assert_eq!(resp.status(), 201);
    }
    let other = core.tenant("Other", true).await?;
    let resp = core
        .http
        .post(format!(
            "{}/admin/v1/subprocessors/{id}/objections",
            core.url()
        ))
        .bearer_auth(&t.api_key)
        .json(&json!({"tenant_id": other.id}))
        .send()
        .await?;
    assert_eq!(resp.status(), 403, "a tenant may not object for another");
    let list = get(&core, "/admin/v1/subprocessors").await?;
    let entry = list["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["objection_count"], 1);
    assert_eq!(list["pending"], 1);

    // The second tenant's answer shows its own objection only: not the
    // first tenant's id or words, and no staff names; staff see both.
    let resp = core
        .http
        .post(format!(
            "{}/admin/v1/subprocessors/{id}/objections",
            core.url()
        ))
        .bearer_auth(&other.api_key)
        .json(&json!({"tenant_id": other.id, "reason": "ours alone"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 201);
    let seen: Value = resp.json().await?;
    let text = seen.to_string();
    assert!(!text.contains(t.id.as_str()), "{text}");
    assert!(!text.contains("no transfers to third countries"), "{text}");
    assert!(!text.contains("approved_by"), "{text}");
    assert_eq!(seen["objections"].as_array().map(Vec::len), Some(1));
    assert_eq!(seen["objections"][0]["tenant_id"], other.id.as_str());
    assert_eq!(seen["objection_count"], 2);
    let staff = crate::entry(&get(&core, "/admin/v1/subprocessors").await?, &id);
    assert_eq!(staff["objections"].as_array().map(Vec::len), Some(2));

    // The feed is a JSON Feed 1.1 with the announcement.
    let feed = core
        .http
        .get(format!("{}/admin/v1/subprocessors/feed.json", core.url()))
        .bearer_auth(&t.api_key)
        .send()
        .await?;
    assert!(
        feed.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("application/feed+json"))
    );
    let feed: Value = feed.json().await?;
    assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
    assert!(
        feed["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["title"]
                .as_str()
                .is_some_and(|t| t.contains("Acme Translation"))))
    );

    // Not approved, 32 days later it is still proposed: nothing takes
    // effect without an admin's approval.
    let (status, _) = post(
        &core,
        "/admin/v1/clock/advance",
        json!({"seconds": 32 * 86400}),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let list = get(&core, "/admin/v1/subprocessors").await?;
    let entry = list["items"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["id"] == id.as_str()))
        .cloned()
        .unwrap_or_default();
    assert_eq!(entry["status"], "proposed");
    assert_eq!(entry["approval"], "pending");
    assert_eq!(entry["objection_count"], 2);
    assert_eq!(list["pending"], 1);
    assert_eq!(list["awaiting_approval"], 1);
    Ok(())
}
}

c24_e2e::both! {
async fn approved_changes_take_effect_and_unapproved_ones_stay_pending() -> anyhow::Result<()> {
    let (core, mut pool, _dir) = start_with_pool(6).await?;
    let announce = |name: &str, days: i64| {
        json!({
            "name": name,
            "category": "Monitoring & Logging",
            "purpose": "Error tracking",
            "location": "Germany",
            "safeguard": "DPA",
            "data_categories": ["IP addresses"],
            "effective_at": rfc3339_in(days),
        })
    };
    let coll = "/admin/v1/subprocessors";
    let (status, a) = post_pooled(&core, &mut pool, coll, announce("Approved GmbH", 31)).await?;
    assert_eq!(status, 201, "{a}");
    let (status, b) = post_pooled(&core, &mut pool, coll, announce("Unapproved BV", 31)).await?;
    assert_eq!(status, 201, "{b}");
    let a_id = a["id"].as_str().unwrap_or_default().to_string();
    let b_id = b["id"].as_str().unwrap_or_default().to_string();

    // Approve A before its date: still proposed until then.
    let (status, approved) = post_pooled(
        &core,
        &mut pool,
        &format!("{coll}/{a_id}/approve"),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["approval"], "approved");
    assert_eq!(approved["status"], "proposed");
    assert!(
        approved["approved_by"]
            .as_str()
            .is_some_and(|by| by.starts_with("reg")),
        "{approved}"
    );
    assert!(approved["approved_at"].is_string(), "{approved}");
    let list = get(&core, coll).await?;
    assert_eq!(list["awaiting_approval"], 1, "only B waits");

    // Approving again: nothing to approve; an unknown id: 404.
    let (status, v) = post_pooled(
        &core,
        &mut pool,
        &format!("{coll}/{a_id}/approve"),
        json!({}),
    )
    .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("nothing_to_approve"))
    );
    let (status, v) =
        post_pooled(&core, &mut pool, &format!("{coll}/nope/approve"), json!({})).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    // Past the effective date: A is active, B still waits.
    core.admin.advance_clock(32 * 86_400).await?;
    let list = get(&core, coll).await?;
    let (ea, eb) = (entry(&list, &a_id), entry(&list, &b_id));
    assert_eq!(ea["status"], "active", "{ea}");
    assert_eq!(eb["status"], "proposed", "{eb}");
    assert_eq!(eb["approval"], "pending", "{eb}");
    assert_eq!(list["awaiting_approval"], 1);
    let o = get(&core, "/admin/v1/overview").await?;
    assert_eq!(o["registry_awaiting_approval"], 1);

    // B approved after its date: active at once.
    let (status, vb) = post_pooled(
        &core,
        &mut pool,
        &format!("{coll}/{b_id}/approve"),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200, "{vb}");
    assert_eq!(vb["status"], "active", "{vb}");
    let list = get(&core, coll).await?;
    assert_eq!(list["awaiting_approval"], 0);
    assert_eq!(list["pending"], 0);

    // The approvals are in the audit log under the approvers' names.
    let audit = get(&core, "/admin/v1/audit?limit=100").await?;
    let approvals: Vec<&Value> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["action"] == "POST /admin/v1/subprocessors/{id}/approve")
        .collect();
    assert_eq!(approvals.len(), 4, "{audit}");
    assert!(
        approvals
            .iter()
            .any(|i| i["outcome"] == "nothing_to_approve" && i["status"] == 409)
    );
    // The feed says it was approved, without naming who.
    let feed = get(&core, "/admin/v1/subprocessors/feed.json").await?;
    let text = feed.to_string();
    assert!(text.contains("Unapproved BV approved"), "{text}");
    let approvers: Vec<String> = [&a_id, &b_id]
        .iter()
        .filter_map(|id| entry(&list, id)["approved_by"].as_str().map(str::to_string))
        .collect();
    assert_eq!(approvers.len(), 2, "{list}");
    for who in &approvers {
        assert!(!text.contains(who.as_str()), "the feed names {who}: {text}");
    }
    Ok(())
}
}

c24_e2e::both! {
async fn live_figures_follow_ingest() -> anyhow::Result<()> {
    let core = start().await?;
    let t = core.tenant("Busy", true).await?;

    // Subscribe to events before the traffic.
    let resp = core
        .http
        .get(format!("{}/admin/v1/events", core.url()))
        .bearer_auth(core.running.admin_token())
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with("text/event-stream"))
    );
    let mut sse = resp.bytes_stream();

    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (ack, _) = v.send_message("c0", None, "first", WAIT).await?;
    for i in 1..20 {
        v.send_message(&format!("c{i}"), Some(&ack.conversation_id), "more", WAIT)
            .await?;
    }
    core.as_tenant(&t)
        .post_message(&ack.conversation_id, "reply")
        .await?;

    let th = get(
        &core,
        &format!("/admin/v1/throughput?window=60s&tenant={}", t.id),
    )
    .await?;
    assert_eq!(th["window_ms"], 60_000);
    let webchat_in: u64 = th["series"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|x| x["channel"] == "webchat" && x["direction"] == "inbound")
        })
        .and_then(|x| x["counts"].as_array())
        .map(|c| c.iter().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert_eq!(webchat_in, 20, "{th}");
    assert!(th["ingest_latency_us"]["count"].as_u64().unwrap_or(0) >= 20);
    let bad = core
        .http
        .get(format!("{}/admin/v1/throughput?window=forever", core.url()))
        .bearer_auth(core.running.admin_token())
        .send()
        .await?;
    assert_eq!(bad.status(), 400);

    let o = get(&core, "/admin/v1/overview").await?;
    assert_eq!(o["messages_total"], 21);
    assert_eq!(o["tenants"]["total"], 1);

    let list = get(&core, "/admin/v1/tenants").await?;
    assert_eq!(list["items"][0]["stored_messages"], 21);
    assert_eq!(list["items"][0]["conversations"], 1);
    // The per-second history counts complete seconds: one second on (dev
    // clock), all 21 messages are in it, 60 entries, oldest first.
    core.admin.advance_clock(1).await?;
    let list = get(&core, "/admin/v1/tenants").await?;
    let history: Vec<u64> = list["items"][0]["msgs_per_sec_history"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(history.len(), 60, "{list}");
    assert_eq!(history.iter().sum::<u64>(), 21, "{history:?}");

    // The tenant's conversations for staff: metadata only.
    let convs = get(&core, &format!("/admin/v1/tenants/{}/conversations", t.id)).await?;
    let items = convs["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{convs}");
    assert_eq!(items[0]["id"], ack.conversation_id.as_str());
    assert_eq!(items[0]["channel"], "webchat");
    assert_eq!(items[0]["status"], "open");
    assert_eq!(items[0]["message_count"], 21);
    let keys: Vec<&str> = items[0]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "channel",
            "created_at",
            "id",
            "last_activity_at",
            "message_count",
            "status"
        ]
    );
    let text = convs.to_string();
    assert!(!text.contains("first") && !text.contains("reply"), "{text}");

    // The SSE stream carried the tenant creation? (It was created before we
    // subscribed.) It carries a throughput tick within a couple of seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut text = String::new();
    while !text.contains("event: throughput.tick") {
        let chunk = tokio::time::timeout_at(deadline, sse.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("\"messages_total\""));

    let metrics = core
        .http
        .get(format!("{}/metrics", core.url()))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("c24_messages_total{channel=\"webchat\",direction=\"inbound\"} 20"),
        "{metrics}"
    );
    assert!(metrics.contains("c24_tenants{status=\"active\"} 1"));
    assert!(metrics.contains("c24_purge_runs_total"));
    Ok(())
}
}

c24_e2e::both! {
async fn tenants_list_pages_sorts_and_filters_on_the_server() -> anyhow::Result<()> {
    let core = start().await?;
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    for i in 0..25 {
        core.tenant(&format!("Tenant {i:02}"), i % 5 != 0).await?;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/tenants?limit=10&cursor={c}"),
            None => "/admin/v1/tenants?limit=10".to_string(),
        };
        let page = get(&core, &path).await?;
        assert_eq!(page["total"], 25);
        for t in page["items"].as_array().cloned().unwrap_or_default() {
            seen.push(t["name"].as_str().unwrap_or_default().to_string());
        }
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen.len(), 25);
    assert_eq!(seen, sorted);

    let desc = get(&core, "/admin/v1/tenants?sort=name&order=desc&limit=1").await?;
    assert_eq!(desc["items"][0]["name"], "Tenant 24");
    // A tenant without traffic in the last minute sends no history.
    assert_eq!(desc["items"][0]["msgs_per_sec_history"], json!([]));
    let no_dpa = get(&core, "/admin/v1/tenants?dpa=false").await?;
    assert_eq!(no_dpa["total"], 5);
    let q = get(&core, "/admin/v1/tenants?q=tenant%201").await?;
    assert_eq!(q["total"], 10);

    let id = desc["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, _) = post(
        &core,
        &format!("/admin/v1/tenants/{id}/suspend"),
        json!({}),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let suspended = get(&core, "/admin/v1/tenants?status=suspended").await?;
    assert_eq!(suspended["total"], 1);
    let (status, v) = post(
        &core,
        &format!("/admin/v1/tenants/{id}/terminate"),
        json!({}),
        Some(codes.code()?),
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let (status, v) = post(
        &core,
        &format!("/admin/v1/tenants/{id}/resume"),
        json!({}),
        None,
    )
    .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let bad = core
        .http
        .get(format!("{}/admin/v1/tenants?sort=colour", core.url()))
        .bearer_auth(core.running.admin_token())
        .send()
        .await?;
    assert_eq!(bad.status(), 400);
    Ok(())
}
}
