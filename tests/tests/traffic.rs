//! The traffic trace (`GET /admin/v1/traffic/trace`), end to end: messages
//! on all three channels and agent replies, exported as JSONL; each record's
//! channel, direction and size; pseudonymous conversation ids stable within
//! an export and different across exports; nothing of the content or of the
//! end user in the export; bad bounds refused; the rows purged after 90 days.

use std::collections::{BTreeMap, BTreeSet};

use c24_api::Channel;
use c24_api::admin::throughput::Direction;
use c24_api::admin::traffic::TraceRecord;
use c24_api::client::webchat::WebchatClient;
use c24_e2e::inspect::{Arg, Inspector, Part};
use c24_e2e::{Core, TotpCodes, WAIT, marker, whatsapp_text};
use serde_json::Value;

const ADMIN_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// The export as raw text (to grep) and as records.
async fn export(core: &Core, from: &str, to: &str) -> anyhow::Result<(String, Vec<TraceRecord>)> {
    let resp = core
        .http
        .get(format!("{}/admin/v1/traffic/trace", core.url()))
        .query(&[("from", from), ("to", to)])
        .bearer_auth(core.running.admin_token())
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "export: {}", resp.status());
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    anyhow::ensure!(ct == "application/x-ndjson", "content type {ct:?}");
    let text = resp.text().await?;
    let mut records = Vec::new();
    for line in text.lines() {
        // Exactly the contract's fields, nothing more.
        let v: Value = serde_json::from_str(line)?;
        let keys: BTreeSet<&str> = v
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            BTreeSet::from([
                "at",
                "channel",
                "conversation",
                "direction",
                "size_bytes",
                "tenant_id"
            ]),
            "{line}"
        );
        records.push(serde_json::from_value(v)?);
    }
    Ok((text, records))
}

c24_e2e::both! {
async fn the_trace_records_every_message_without_content_or_identifiers() -> anyhow::Result<()> {
    let core = Core::start_with(c24_e2e::dev_clock_with_totp(ADMIN_TOTP)).await?;
    let start = core.running.clock().now_ms();
    let a = core.tenant("Trace A", true).await?;
    let b = core.tenant("Trace B", true).await?;
    let agent = core.as_tenant(&a);

    // Web chat: two visitor messages, one agent reply.
    let visitor = marker("visitor");
    let web_bodies = [marker("web-one"), format!("{} and more", marker("web-two"))];
    let mut ws =
        WebchatClient::connect(&core.ws_url(), &a.channels.webchat.widget_key, &visitor).await?;
    let (ack, _) = ws.send_message("k1", None, &web_bodies[0], WAIT).await?;
    let web_conv = ack.conversation_id.clone();
    ws.send_message("k2", Some(&web_conv), &web_bodies[1], WAIT)
        .await?;
    let web_reply = marker("agent-web-reply");
    agent.post_message(&web_conv, &web_reply).await?;

    // WhatsApp: one message from an identifiable person, one agent reply.
    let phone = "4915123456789";
    let name = marker("Dora");
    let wa_body = marker("whatsapp-body");
    let wamid = marker("wamid");
    let resp = core
        .whatsapp(&a, &whatsapp_text(&a, phone, &name, &wamid, &wa_body), None)
        .await?;
    assert_eq!(resp.status(), 200);
    let receipt: Value = resp.json().await?;
    let wa_conv = receipt["messages"][0]["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let wa_reply = marker("agent-wa-reply-longer-than-the-others");
    agent.post_message(&wa_conv, &wa_reply).await?;

    // Email: one message with an address and a subject.
    let mail_from = format!("{}@example.com", marker("alice"));
    let subject = marker("Subject");
    let mail_body = marker("email-body");
    let raw = format!(
        "From: Alice Example <{mail_from}>\r\nTo: support@example.net\r\nSubject: {subject}\r\n\
         Message-ID: <{}@example.com>\r\n\r\n{mail_body}\r\n",
        marker("msgid")
    );
    let resp = core.email(&a, raw.as_bytes(), None).await?;
    assert!(resp.status().is_success(), "{}", resp.status());
    let receipt: Value = resp.json().await?;
    let mail_conv = receipt["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Another tenant's message, so records name their tenant.
    let mut ws_b =
        WebchatClient::connect(&core.ws_url(), &b.channels.webchat.widget_key, "vb").await?;
    let (ack_b, _) = ws_b.send_message("kb", None, "hello from b", WAIT).await?;

    let until = core.running.clock().now_ms() + 1;
    let (from, to) = (rfc3339(start - 1_000), rfc3339(until));
    let (text, records) = export(&core, &from, &to).await?;
    assert_eq!(records.len(), 7, "{text}");
    // Ordered by time.
    let ats: Vec<&str> = records.iter().map(|r| r.at.as_str()).collect();
    assert!(ats.windows(2).all(|w| w[0] <= w[1]), "{ats:?}");
    assert!(
        ats.iter()
            .all(|at| at.len() == "2026-12-01T09:43:22.123456Z".len()),
        "{ats:?}"
    );

    // Per conversation (by pseudonym): the (channel, direction, size) the
    // agent API shows for its messages, in order.
    let mut by_pseudonym: BTreeMap<&str, Vec<(Channel, Direction, u64)>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.tenant_id == a.id) {
        by_pseudonym
            .entry(r.conversation.as_str())
            .or_default()
            .push((r.channel, r.direction, r.size_bytes));
    }
    assert_eq!(by_pseudonym.len(), 3, "{text}");
    let expected = |channel, shapes: Vec<(Direction, usize)>| -> Vec<(Channel, Direction, u64)> {
        shapes
            .into_iter()
            .map(|(d, n)| (channel, d, n as u64))
            .collect()
    };
    let mut want = vec![
        expected(
            Channel::Webchat,
            vec![
                (Direction::Inbound, web_bodies[0].len()),
                (Direction::Inbound, web_bodies[1].len()),
                (Direction::Outbound, web_reply.len()),
            ],
        ),
        expected(
            Channel::Whatsapp,
            vec![
                (Direction::Inbound, wa_body.len()),
                (Direction::Outbound, wa_reply.len()),
            ],
        ),
    ];
    // The email body as stored (the parser's text part), by the agent API.
    let mail_msgs = agent.messages(&mail_conv, 10, None).await?;
    assert_eq!(mail_msgs.items.len(), 1);
    assert!(mail_msgs.items[0].content.contains(&mail_body));
    want.push(expected(
        Channel::Email,
        vec![(Direction::Inbound, mail_msgs.items[0].content.len())],
    ));
    let mut got: Vec<_> = by_pseudonym.values().cloned().collect();
    // Channel and Direction are not Ord: sort by their debug text.
    got.sort_by_key(|v| format!("{v:?}"));
    want.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(got, want);
    let b_records: Vec<_> = records.iter().filter(|r| r.tenant_id == b.id).collect();
    assert_eq!(b_records.len(), 1);
    assert_eq!(b_records[0].size_bytes, "hello from b".len() as u64);

    // Nothing of the content, the person or the stored ids.
    let mut secrets: Vec<String> = vec![
        visitor.clone(),
        web_reply.clone(),
        phone.to_string(),
        name.clone(),
        wa_body.clone(),
        wamid.clone(),
        wa_reply.clone(),
        mail_from.clone(),
        subject.clone(),
        mail_body.clone(),
        web_conv.clone(),
        wa_conv.clone(),
        mail_conv.clone(),
        ack_b.conversation_id.clone(),
        ack.message_id.clone(),
        "hello from b".into(),
    ];
    secrets.extend(web_bodies.iter().cloned());
    for s in &secrets {
        assert!(!text.contains(s.as_str()), "the export contains {s:?}");
    }

    // A second export: the same shape, other pseudonyms (unlinkable).
    let (_, again) = export(&core, &from, &to).await?;
    assert_eq!(again.len(), records.len());
    let first_ids: BTreeSet<&str> = records.iter().map(|r| r.conversation.as_str()).collect();
    let second_ids: BTreeSet<&str> = again.iter().map(|r| r.conversation.as_str()).collect();
    assert_eq!(first_ids.len(), 4);
    assert_eq!(second_ids.len(), 4);
    assert!(first_ids.is_disjoint(&second_ids));

    // The typed client reads the same records.
    let typed = core.admin.traffic_trace(&from, &to).await?;
    assert_eq!(typed.len(), records.len());
    assert_eq!(
        typed.iter().map(|r| r.size_bytes).sum::<u64>(),
        records.iter().map(|r| r.size_bytes).sum::<u64>()
    );
    // A range before the traffic is empty.
    let (_, none) = export(&core, &rfc3339(start - 60_000), &rfc3339(start - 1_000)).await?;
    assert!(none.is_empty());

    // The tenant's conversations for staff: metadata, no identifiers.
    let convs = core.admin.tenant_conversations(&a.id, 10).await?;
    assert_eq!(convs.items.len(), 3);
    let listing = serde_json::to_string(&convs)?;
    for s in [name.as_str(), &mail_from, &subject, &wa_body, phone] {
        assert!(!listing.contains(s), "the listing contains {s:?}");
    }

    // The export is audited.
    let audit = core.admin.audit(20, None).await?;
    assert!(
        audit
            .items
            .iter()
            .any(|e| e.action == "GET /admin/v1/traffic/trace" && e.status == 200)
    );

    // Retention: system-log period (90 days). Counted under access_logs,
    // overdue once the clock is past it, gone after a purge.
    let report = core.admin.retention().await?;
    let logs = |r: &c24_api::admin::retention::RetentionReport| {
        r.categories
            .iter()
            .find(|c| c.category == "access_logs")
            .cloned()
    };
    let before = logs(&report).ok_or_else(|| anyhow::anyhow!("no access_logs category"))?;
    assert!(before.records >= 7, "{before:?}");
    assert_eq!(before.period_days, 90);
    core.admin.advance_clock(89 * 86_400).await?;
    let (_, kept) = export(&core, &from, &to).await?;
    assert_eq!(kept.len(), 7, "still kept at 89 days");
    core.admin.advance_clock(2 * 86_400).await?;
    let overdue = logs(&core.admin.retention().await?)
        .ok_or_else(|| anyhow::anyhow!("no access_logs category"))?;
    assert!(overdue.overdue >= 7, "{overdue:?}");
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    let run = core.admin.purge(&codes.code()?).await?;
    assert!(run.rows_deleted >= 7, "{run:?}");
    let (_, gone) = export(&core, &from, &to).await?;
    assert!(gone.is_empty(), "{gone:?}");
    let after = logs(&core.admin.retention().await?)
        .ok_or_else(|| anyhow::anyhow!("no access_logs category"))?;
    assert_eq!(after.overdue, 0, "{after:?}");
    assert!(after.records < before.records, "{after:?}");
    ws.close().await;
    ws_b.close().await;
    Ok(())
}
}

c24_e2e::both! {
async fn bad_bounds_are_refused_with_invalid_query() -> anyhow::Result<()> {
    let core = Core::start().await?;
    for q in [
        "",
        "from=2026-01-01T00:00:00Z",
        "to=2026-01-01T00:00:00Z",
        "from=yesterday&to=2026-01-01T00:00:00Z",
        "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&tenant=x",
    ] {
        let resp = core
            .http
            .get(format!("{}/admin/v1/traffic/trace?{q}", core.url()))
            .bearer_auth(core.running.admin_token())
            .send()
            .await?;
        assert_eq!(resp.status(), 400, "{q}");
        let body: Value = resp.json().await?;
        assert_eq!(body["error"]["code"], "invalid_query", "{q}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // The typed client reports the code.
    let err = core
        .admin
        .traffic_trace("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(c24_api::client::ClientError::code),
        Some("invalid_query")
    );
    Ok(())
}
}

c24_e2e::both! {
async fn a_long_export_is_streamed_in_pages_in_order_without_gaps() -> anyhow::Result<()> {
    // Each message acknowledged before the next: one commit each, so the
    // export runs through hundreds of pages (4 commits a page).
    const N: usize = 2_345;
    let core = Core::start().await?;
    let start = core.running.clock().now_ms();
    let t = core.tenant("Long", true).await?;
    let mut ws =
        WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (ack, _) = ws.send_message("k0", None, "x", WAIT).await?;
    for i in 1..N {
        // Sizes 1..=40 bytes, so a reordered or repeated page would show.
        let body = "y".repeat(i % 40 + 1);
        ws.send_message(&format!("k{i}"), Some(&ack.conversation_id), &body, WAIT)
            .await?;
    }
    let to = core.running.clock().now_ms() + 1;
    let mut stream = core
        .admin
        .traffic_trace_stream(&rfc3339(start - 1_000), &rfc3339(to))
        .await?;
    let mut records = Vec::with_capacity(N);
    while let Some(r) = futures_util::StreamExt::next(&mut stream).await {
        records.push(r?);
    }
    assert_eq!(records.len(), N);
    assert!(records.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(
        records
            .iter()
            .all(|r| r.conversation == records[0].conversation)
    );
    let sizes: Vec<u64> = records.iter().map(|r| r.size_bytes).collect();
    let want: Vec<u64> = std::iter::once(1)
        .chain((1..N).map(|i| (i % 40 + 1) as u64))
        .collect();
    assert_eq!(sizes, want, "every message once, in its order");
    ws.close().await;
    Ok(())
}
}

c24_e2e::both! {
/// A stored batch the build cannot read fails the export, never shortens
/// it silently: on the first page a JSON 500 before any record; later, the
/// body ends with an error after the records before it.
async fn an_unreadable_batch_fails_the_export_instead_of_being_skipped() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let start = core.running.clock().now_ms();
    let t = core.tenant("Odd", true).await?;
    let mut ws =
        WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (ack, _) = ws.send_message("k0", None, "x", WAIT).await?;
    // One commit each: more rows than the export's page (4).
    for i in 1..6 {
        ws.send_message(&format!("k{i}"), Some(&ack.conversation_id), "y", WAIT)
            .await?;
    }
    ws.close().await;
    let from = rfc3339(start - 1_000);
    let to = rfc3339(core.running.clock().now_ms() + 1_000);
    let (_, all) = export(&core, &from, &to).await?;
    assert_eq!(all.len(), 6);

    let db = Inspector::open(&core, Part::Data).await?;
    let corrupt = async |which: &str| -> anyhow::Result<u64> {
        db.execute(
            &format!(
                "UPDATE traffic_trace SET entries = ?1 WHERE id = (SELECT {which}(id) FROM traffic_trace)"
            ),
            &[Arg::Bytes(&[0x09])],
        )
        .await
    };
    // The last row: on a later page, after the headers were sent (or still
    // buffered with the first records: then the connection just closes).
    assert_eq!(corrupt("max").await?, 1);
    let sent = core
        .http
        .get(format!("{}/admin/v1/traffic/trace", core.url()))
        .query(&[("from", from.as_str()), ("to", to.as_str())])
        .bearer_auth(core.running.admin_token())
        .send()
        .await;
    if let Ok(resp) = sent {
        assert_eq!(resp.status(), 200);
        assert!(
            resp.text().await.is_err(),
            "the body must end with an error, not look complete"
        );
    }
    let mut read = 0;
    let mut failed = false;
    match core.admin.traffic_trace_stream(&from, &to).await {
        Err(_) => failed = true,
        Ok(mut stream) => {
            while let Some(r) = futures_util::StreamExt::next(&mut stream).await {
                match r {
                    Ok(_) => read += 1,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
        }
    }
    assert!(failed, "the typed client sees the export fail");
    assert!(read < 6, "{read} records");
    assert!(core.admin.traffic_trace(&from, &to).await.is_err());

    // The first row: on the first page, still a proper JSON error.
    assert_eq!(corrupt("min").await?, 1);
    let resp = core
        .http
        .get(format!("{}/admin/v1/traffic/trace", core.url()))
        .query(&[("from", from.as_str()), ("to", to.as_str())])
        .bearer_auth(core.running.admin_token())
        .send()
        .await?;
    assert_eq!(resp.status(), 500);
    let v: Value = resp.json().await?;
    assert_eq!(v["error"]["code"], "internal", "{v}");
    Ok(())
}
}
