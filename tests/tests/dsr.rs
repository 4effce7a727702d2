//! Data-subject requests end to end (privacy policy §9.2), driven by the
//! dev clock: a request left alone is overdue after one calendar month (or
//! after its extension); an erasure leaves no trace of the person at rest
//! — no plaintext, no ciphertext, no blind index, in any file of the data
//! dir (SQLite) or any live row of the database (PostgreSQL) —
//! while everyone else's data is intact; an export is fetched once, by the
//! role that filed the request; a restriction closes ingress for the
//! person (403 `processing_restricted`, nothing stored, the data kept, also
//! after a restart); a rectification re-seals the field.

use c24_api::admin::tenants::TenantCreated;
use c24_api::client::webchat::WebchatClient;
use c24_e2e::inspect::{Arg, Inspector, Part};
use c24_e2e::{Core, StaffTokens, TotpPool, WAIT, marker, whatsapp_text, write_tokens_file};
use chrono::{DateTime, Months, Utc};
use serde_json::{Value, json};

struct T {
    core: Core,
    staff: StaffTokens,
    ops: TotpPool,
    _tokens: tempfile::TempDir,
}

async fn start(encrypt: bool) -> anyhow::Result<T> {
    let tokens = tempfile::tempdir()?;
    let (tokens_file, staff) = write_tokens_file(tokens.path())?;
    let ops = TotpPool::add_to(&tokens_file, "op", "operator", 8)?;
    let core = Core::start_with(|c| {
        *c = c.clone().with_dev_clock();
        c.tokens_file = Some(tokens_file);
        c.at_rest_encryption = encrypt;
    })
    .await?;
    Ok(T {
        core,
        staff,
        ops,
        _tokens: tokens,
    })
}

fn time(v: &Value) -> anyhow::Result<DateTime<Utc>> {
    let s = v
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("not a timestamp: {v}"))?;
    Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
}

fn plus_months(t: DateTime<Utc>, n: u32) -> anyhow::Result<DateTime<Utc>> {
    t.checked_add_months(Months::new(n))
        .ok_or_else(|| anyhow::anyhow!("out of range"))
}

impl T {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        totp: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self
            .core
            .http
            .request(method, format!("{}{path}", self.core.url()))
            .bearer_auth(token)
            .timeout(WAIT);
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(code) = totp {
            req = req.header("X-C24-TOTP", code);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await.unwrap_or(Value::Null)))
    }

    async fn get(&self, path: &str, token: &str) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::GET, path, token, None, None)
            .await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.call(reqwest::Method::POST, path, token, Some(body), None)
            .await
    }

    fn admin(&self) -> String {
        self.core.running.admin_token().to_string()
    }

    /// Files a request with the tenant's key; answers it (201 asserted).
    async fn file(&self, t: &TenantCreated, body: Value) -> anyhow::Result<Value> {
        let (s, v) = self
            .post(&format!("/admin/v1/tenants/{}/dsr", t.id), &t.api_key, body)
            .await?;
        anyhow::ensure!(s == 201, "filing: {s} {v}");
        Ok(v)
    }

    /// Completes a request as an operator with a second factor.
    async fn complete(
        &mut self,
        t: &TenantCreated,
        dsr: &Value,
        body: Value,
    ) -> anyhow::Result<(u16, Value)> {
        let (token, code) = self.ops.code()?;
        let path = format!(
            "/admin/v1/tenants/{}/dsr/{}/complete",
            t.id,
            dsr["id"].as_str().unwrap_or_default()
        );
        self.call(
            reqwest::Method::POST,
            &path,
            &token,
            Some(body),
            Some(&code),
        )
        .await
    }

    async fn dsr(&self, t: &TenantCreated, dsr: &Value) -> anyhow::Result<Value> {
        let path = format!(
            "/admin/v1/tenants/{}/dsr/{}",
            t.id,
            dsr["id"].as_str().unwrap_or_default()
        );
        let (s, v) = self.get(&path, &self.staff.viewer.token).await?;
        anyhow::ensure!(s == 200, "reading the request: {s} {v}");
        Ok(v)
    }

    async fn list(&self, t: &TenantCreated) -> anyhow::Result<Value> {
        let (s, v) = self
            .get(&format!("/admin/v1/tenants/{}/dsr", t.id), &t.api_key)
            .await?;
        anyhow::ensure!(s == 200, "listing: {s} {v}");
        Ok(v)
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.core.running.clock().now_ms()).unwrap_or_default()
    }

    /// Moves the dev clock so that it reads `at` (forward only).
    async fn advance_to(&self, at: DateTime<Utc>) -> anyhow::Result<()> {
        let secs = (at - self.now()).num_seconds();
        anyhow::ensure!(secs > 0, "the clock only moves forward");
        let (s, v) = self
            .post(
                "/admin/v1/clock/advance",
                &self.admin(),
                json!({"seconds": secs}),
            )
            .await?;
        anyhow::ensure!(s == 200, "advancing: {s} {v}");
        Ok(())
    }

    /// POSTs a signed email, stamped by the core's (dev) clock.
    async fn email(&self, t: &TenantCreated, raw: &[u8]) -> anyhow::Result<(u16, Value)> {
        let ts = self.core.running.clock().now_ms() / 1000;
        let resp = self.core.email(t, raw, Some(ts)).await?;
        Ok((
            resp.status().as_u16(),
            resp.json().await.unwrap_or(Value::Null),
        ))
    }
}

fn email_raw(
    from: &str,
    name: &str,
    msgid: &str,
    in_reply_to: Option<&str>,
    subject: &str,
    body: &str,
) -> Vec<u8> {
    let reply = in_reply_to
        .map(|r| format!("In-Reply-To: <{r}>\r\n"))
        .unwrap_or_default();
    format!(
        "From: {name} <{from}>\r\nTo: support@example.net\r\nSubject: {subject}\r\n\
         Message-ID: <{msgid}>\r\n{reply}\r\n{body}\r\n"
    )
    .into_bytes()
}

c24_e2e::both! {
async fn a_request_left_alone_becomes_overdue_after_one_month_or_after_its_extension()
-> anyhow::Result<()> {
    let mut t = start(true).await?;
    let a = t.core.tenant("Acme", true).await?;
    let left = t
        .file(
            &a,
            json!({"type": "access", "subject": {"email": "left.alone@example.com"}}),
        )
        .await?;
    assert_eq!(left["status"], "received");
    assert_eq!(left["overdue"], false);
    assert_eq!(left["subject_kind"], "email");
    assert_eq!(left["requested_by"], format!("tenant:{}", a.id));
    // The record names the kind of identifier, never the identifier.
    assert!(!left.to_string().contains("left.alone"), "{left}");
    let received = time(&left["received_at"])?;
    let due = time(&left["due_at"])?;
    assert_eq!(due, plus_months(received, 1)?, "one calendar month");

    let ext = t
        .file(
            &a,
            json!({"type": "erasure", "subject": {"phone": "+31 6 1234 5678"}}),
        )
        .await?;
    let ext_path = format!(
        "/admin/v1/tenants/{}/dsr/{}/extend",
        a.id,
        ext["id"].as_str().unwrap_or_default()
    );
    let ext_received = time(&ext["received_at"])?;
    let told = t.now().to_rfc3339();
    let (s, v) = t
        .post(
            &ext_path,
            &a.api_key,
            json!({"months": 1, "reason": "complex: three channels", "person_informed_at": told}),
        )
        .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"], "extended");
    assert_eq!(time(&v["due_at"])?, plus_months(ext_received, 2)?);
    assert_eq!(time(&v["initial_due_at"])?, plus_months(ext_received, 1)?);
    assert_eq!(v["extensions"][0]["reason"], "complex: three channels");

    // A minute before the month is up: not overdue.
    t.advance_to(due - chrono::Duration::seconds(60)).await?;
    let v = t.dsr(&a, &left).await?;
    assert_eq!(v["overdue"], false, "{v}");
    let left_s = v["seconds_left"].as_i64().unwrap_or(0);
    assert!((1..=120).contains(&left_s), "{v}");
    assert_eq!(t.list(&a).await?["overdue"], 0);

    // A minute after: overdue; the extended one is not.
    t.advance_to(due + chrono::Duration::seconds(60)).await?;
    let v = t.dsr(&a, &left).await?;
    assert_eq!(v["overdue"], true, "{v}");
    assert!(v["seconds_left"].as_i64().unwrap_or(0) < 0, "{v}");
    assert_eq!(t.dsr(&a, &ext).await?["overdue"], false);
    let list = t.list(&a).await?;
    assert_eq!(
        (list["overdue"].clone(), list["open"].clone()),
        (json!(1), json!(2))
    );
    let overview = t.core.admin.overview().await?;
    assert_eq!(overview.dsr_overdue, 1);

    // Telling the person now, after the first month, is too late to extend.
    let left_extend = format!(
        "/admin/v1/tenants/{}/dsr/{}/extend",
        a.id,
        left["id"].as_str().unwrap_or_default()
    );
    let (s, v) = t
        .post(
            &left_extend,
            &a.api_key,
            json!({"months": 1, "reason": "late", "person_informed_at": t.now().to_rfc3339()}),
        )
        .await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("extension_too_late"))
    );
    // Told within the first month (recorded only now): a second month; no third.
    let in_time = (ext_received + chrono::Duration::seconds(60)).to_rfc3339();
    let extend =
        |reason: &str| json!({"months": 1, "reason": reason, "person_informed_at": in_time});
    let (s, v) = t.post(&ext_path, &a.api_key, extend("numerous")).await?;
    assert_eq!(s, 200, "{v}");
    let ext_due = time(&v["due_at"])?;
    assert_eq!(
        ext_due,
        plus_months(ext_received, 3)?,
        "at most three months in all"
    );
    let (s, v) = t.post(&ext_path, &a.api_key, extend("more")).await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("extension_limit"))
    );
    let (s, v) = t
        .post(
            &ext_path,
            &a.api_key,
            json!({"months": 3, "reason": "x", "person_informed_at": in_time}),
        )
        .await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );

    t.advance_to(ext_due - chrono::Duration::seconds(60))
        .await?;
    assert_eq!(t.dsr(&a, &ext).await?["overdue"], false);
    t.advance_to(ext_due + chrono::Duration::seconds(60))
        .await?;
    assert_eq!(t.dsr(&a, &ext).await?["overdue"], true);
    assert_eq!(t.list(&a).await?["overdue"], 2);

    // Completed late: no longer overdue, and the lateness stays visible.
    let (s, v) = t.complete(&a, &left, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["status"].as_str(), v["overdue"].as_bool()),
        (Some("completed"), Some(false))
    );
    assert!(v["seconds_left"].as_i64().unwrap_or(0) < 0, "{v}");
    let (s, v) = t.complete(&a, &left, json!({})).await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let list = t.list(&a).await?;
    assert_eq!(
        (list["overdue"].clone(), list["open"].clone()),
        (json!(1), json!(1))
    );
    let done = t.dsr(&a, &left).await?;
    let history: Vec<&str> = done["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|e| e["event"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(history, ["filed", "completed"]);
    Ok(())
}
}

/// The person's values as stored (contact, messages, email threads, the
/// sealed export), each with where it was read from.
async fn person_blobs(
    core: &Core,
    conversations: &[&str],
) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
    let db = Inspector::open(core, Part::Data).await?;
    let mut blobs = Vec::new();
    let mut keep = |column: &'static str, v: &Option<Vec<u8>>| {
        if let Some(v) = v {
            blobs.push((column, v.clone()));
        }
    };
    for conv in conversations {
        let contact = db
            .rows(
                "SELECT k.ident_bi, k.ident_ct, k.name_ct FROM conversations c
                 JOIN contacts k ON k.id = c.contact_id WHERE c.id = ?1",
                &[Arg::Text(conv)],
            )
            .await?;
        anyhow::ensure!(contact.len() == 1, "conversation {conv} has no contact");
        for (column, v) in ["contacts.ident_bi", "contacts.ident_ct", "contacts.name_ct"]
            .into_iter()
            .zip(&contact[0])
        {
            keep(column, v);
        }
        let messages = db
            .rows(
                "SELECT body_ct, subject_ct, dedupe_key, client_key FROM messages
                 WHERE conversation_id = ?1",
                &[Arg::Text(conv)],
            )
            .await?;
        for row in &messages {
            for (column, v) in [
                "messages.body_ct",
                "messages.subject_ct",
                "messages.dedupe_key",
                "messages.client_key",
            ]
            .into_iter()
            .zip(row)
            {
                keep(column, v);
            }
        }
        let threads = db
            .rows(
                "SELECT msgid_bi FROM email_threads WHERE conversation_id = ?1",
                &[Arg::Text(conv)],
            )
            .await?;
        for row in &threads {
            keep("email_threads.msgid_bi", &row[0]);
        }
    }
    for row in &db.rows("SELECT sealed FROM dsr_exports", &[]).await? {
        keep("dsr_exports.sealed", &row[0]);
    }
    Ok(blobs)
}

/// The person's rows still in the database, by their blind indexes and conversations.
async fn person_rows(core: &Core, bis: &[Vec<u8>], conversations: &[&str]) -> anyhow::Result<i64> {
    let db = Inspector::open(core, Part::Data).await?;
    let mut n = 0i64;
    for bi in bis {
        for sql in [
            "SELECT count(*) FROM contacts WHERE ident_bi = ?1",
            "SELECT count(*) FROM dsr_requests WHERE subject_bi = ?1",
            "SELECT count(*) FROM email_threads WHERE msgid_bi = ?1",
            "SELECT count(*) FROM messages WHERE dedupe_key = ?1 OR client_key = ?1",
        ] {
            n += db.count(sql, &[Arg::Bytes(bi)]).await?;
        }
    }
    for conv in conversations {
        for sql in [
            "SELECT count(*) FROM conversations WHERE id = ?1",
            "SELECT count(*) FROM messages WHERE conversation_id = ?1",
            "SELECT count(*) FROM email_threads WHERE conversation_id = ?1",
        ] {
            n += db.count(sql, &[Arg::Text(conv)]).await?;
        }
    }
    n += db.count("SELECT count(*) FROM dsr_exports", &[]).await?;
    Ok(n)
}

/// A conversation id as the store may hold it: its text, as a UUID, and
/// as the 16 raw bytes the traffic trace packs it into.
fn conversation_id_forms(ids: &[&str]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for id in ids {
        let uuid = uuid::Uuid::parse_str(id)?;
        out.push((format!("raw bytes of {id}"), uuid.as_bytes().to_vec()));
        out.push((format!("text {id}"), id.as_bytes().to_vec()));
        out.push((
            format!("uuid {}", uuid.hyphenated()),
            uuid.hyphenated().to_string().into_bytes(),
        ));
    }
    Ok(out)
}

/// The tenant's traffic trace, all of it: per pseudonymous conversation,
/// its entries as (channel, size).
async fn tenant_trace(
    t: &T,
    tenant_id: &str,
) -> anyhow::Result<std::collections::BTreeMap<String, Vec<(String, u64)>>> {
    let records = t
        .core
        .admin
        .traffic_trace("2000-01-01T00:00:00Z", "2200-01-01T00:00:00Z")
        .await?;
    let mut out: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    for r in records.into_iter().filter(|r| r.tenant_id == tenant_id) {
        out.entry(r.conversation)
            .or_default()
            .push((r.channel.as_str().to_string(), r.size_bytes));
    }
    Ok(out)
}

async fn erasure_leaves_no_trace(encrypt: bool) -> anyhow::Result<()> {
    let mut t = start(encrypt).await?;
    let a = t.core.tenant("Acme", true).await?;
    let agent = t.core.as_tenant(&a);

    // The person: two emails in one thread, an agent's reply, a web chat.
    let p_email = format!("{}@example.com", marker("p-mail"));
    let p_name = marker("P-Name");
    let p_texts = [
        marker("p-body-1"),
        marker("p-body-2"),
        marker("p-subject"),
        marker("p-reply"),
        marker("p-chat"),
    ];
    let p_visitor = marker("p-visitor");
    let m1 = format!("{}@mail.example.com", marker("m1"));
    let (s, r1) = t
        .email(
            &a,
            &email_raw(&p_email, &p_name, &m1, None, "Order", &p_texts[0]),
        )
        .await?;
    assert_eq!(s, 201, "{r1}");
    let p_conv = r1["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let m2 = format!("{}@mail.example.com", marker("m2"));
    let (s, r2) = t
        .email(
            &a,
            &email_raw(&p_email, &p_name, &m2, Some(&m1), &p_texts[2], &p_texts[1]),
        )
        .await?;
    assert_eq!(
        (s, r2["conversation_id"].as_str()),
        (201, Some(p_conv.as_str()))
    );
    agent.post_message(&p_conv, &p_texts[3]).await?;
    let mut ws =
        WebchatClient::connect(&t.core.ws_url(), &a.channels.webchat.widget_key, &p_visitor)
            .await?;
    let (p_ack, _) = ws.send_message("c1", None, &p_texts[4], WAIT).await?;
    ws.close().await;

    // Someone else, on both channels.
    let q_email = format!("{}@example.com", marker("q-mail"));
    let q_text = marker("q-body");
    let (s, rq) = t
        .email(
            &a,
            &email_raw(
                &q_email,
                "Q",
                &format!("{}@x", marker("mq")),
                None,
                "Hi",
                &q_text,
            ),
        )
        .await?;
    assert_eq!(s, 201);
    let q_conv = rq["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let w_text = marker("w-chat");
    let mut ws =
        WebchatClient::connect(&t.core.ws_url(), &a.channels.webchat.widget_key, "w").await?;
    let (w_ack, _) = ws.send_message("c1", None, &w_text, WAIT).await?;
    ws.close().await;

    // An export of the person, built and not fetched: it goes with the erasure.
    let access = t
        .file(&a, json!({"type": "access", "subject": {"email": p_email}}))
        .await?;
    let (s, v) = t.complete(&a, &access, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"]["messages"], 3, "{v}");

    let blobs = person_blobs(&t.core, &[&p_conv, &p_ack.conversation_id]).await?;
    assert!(blobs.len() >= 10, "{} blobs", blobs.len());
    let plaintexts: Vec<Vec<u8>> = p_texts
        .iter()
        .chain([&p_email, &p_name, &p_visitor])
        .map(|s| s.as_bytes().to_vec())
        .collect();
    if encrypt {
        // Encrypted at rest: the plaintext was never in any file.
        for p in &plaintexts {
            assert!(t.core.stored(p).await?.is_empty());
        }
    } else {
        // Stored in the clear: the grep below can see it.
        assert!(!t.core.stored(p_texts[0].as_bytes()).await?.is_empty());
        assert!(!t.core.stored(p_email.as_bytes()).await?.is_empty());
    }
    let bis: Vec<Vec<u8>> = blobs
        .iter()
        .filter(|(_, b)| b.len() == 32)
        .map(|(_, b)| b.clone())
        .collect();
    assert!(person_rows(&t.core, &bis, &[&p_conv, &p_ack.conversation_id]).await? > 0);
    let stored_before = t.core.admin.tenant(&a.id).await?.stored_messages;
    // The traffic trace holds the person's messages, under the stored
    // conversation ids (packed as 16 raw bytes): the erasure must take them.
    let p_ids = conversation_id_forms(&[&p_conv, &p_ack.conversation_id])?;
    for (form, b) in &p_ids {
        if form.starts_with("raw") {
            assert!(
                !t.core.stored(b).await?.is_empty(),
                "the trace should hold the {form} before the erasure"
            );
        }
    }
    let trace_before = tenant_trace(&t, &a.id).await?;
    let mut turns: Vec<usize> = trace_before.values().map(Vec::len).collect();
    turns.sort_unstable();
    // The person's email conversation (2 in, 1 reply), web chat; q's, w's.
    assert_eq!(turns, [1, 1, 1, 3], "{trace_before:?}");

    // Erase the person, by email and by visitor id.
    let by_email = t
        .file(
            &a,
            json!({"type": "erasure", "subject": {"email": p_email.to_uppercase()}}),
        )
        .await?;
    let (s, v) = t.complete(&a, &by_email, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (
            v["outcome"]["contacts"].clone(),
            v["outcome"]["conversations"].clone(),
            v["outcome"]["messages"].clone()
        ),
        (json!(1), json!(1), json!(3)),
        "{v}"
    );
    let by_visitor = t
        .file(
            &a,
            json!({"type": "erasure", "subject": {"visitor_id": p_visitor}}),
        )
        .await?;
    let (s, v) = t.complete(&a, &by_visitor, json!({})).await?;
    assert_eq!(
        (s, v["outcome"]["messages"].clone()),
        (200, json!(1)),
        "{v}"
    );

    // No trace in any file of the data dir (database, WAL, side files).
    for p in &plaintexts {
        let hits = t.core.stored(p).await?;
        assert!(
            hits.is_empty(),
            "{:?} still in {hits:?}",
            String::from_utf8_lossy(p)
        );
    }
    for (column, b) in &blobs {
        let hits = t.core.stored(b).await?;
        assert!(
            hits.is_empty(),
            "a {}-byte value of the person ({column} {}) is still in {hits:#?}",
            b.len(),
            hex(b)
        );
    }
    assert_eq!(
        person_rows(&t.core, &bis, &[&p_conv, &p_ack.conversation_id]).await?,
        0
    );
    // The erased conversations' ids, in any form, are in no file.
    for (form, b) in &p_ids {
        let hits = t.core.stored(b).await?;
        assert!(
            hits.is_empty(),
            "the erased conversation id ({form}) is still in {hits:#?}"
        );
    }
    // The trace export: the person's four entries gone, q's and w's kept.
    let trace_after = tenant_trace(&t, &a.id).await?;
    assert_eq!(trace_after.len(), 2, "{trace_after:?}");
    assert!(
        trace_after.values().all(|e| e.len() == 1),
        "{trace_after:?}"
    );
    let mut kept: Vec<(String, u64)> = trace_after.values().flatten().cloned().collect();
    kept.sort();
    let mut others: Vec<(String, u64)> = trace_before
        .values()
        .filter(|e| e.len() == 1)
        .flatten()
        .cloned()
        .collect();
    assert!(
        kept.iter().all(|k| others.contains(k)),
        "{kept:?} not among {others:?}"
    );
    others.retain(|o| o.0 == "email");
    assert_eq!(
        kept.iter().filter(|k| k.0 == "email").collect::<Vec<_>>(),
        others.iter().collect::<Vec<_>>(),
        "q's email entry is kept"
    );
    let after = t.core.admin.tenant(&a.id).await?;
    assert_eq!(after.stored_messages, stored_before - 4);
    let gone = agent.messages(&p_conv, 10, None).await.err();
    assert_eq!(
        gone.as_ref().and_then(|e| e.code()),
        Some("conversation_not_found")
    );
    // The access request's unfetched export went with the person.
    let path = format!(
        "/admin/v1/tenants/{}/dsr/{}/export",
        a.id,
        access["id"].as_str().unwrap_or_default()
    );
    assert_eq!(t.get(&path, &a.api_key).await?.0, 410);

    // Everyone else is intact.
    let q = agent.messages(&q_conv, 10, None).await?;
    assert_eq!(q.items[0].content, q_text);
    let w = agent.messages(&w_ack.conversation_id, 10, None).await?;
    assert_eq!(w.items[0].content, w_text);
    if !encrypt {
        assert!(!t.core.stored(q_text.as_bytes()).await?.is_empty());
    }

    // The visitor comes back: the old conversation is gone, and a resent
    // client_msg_id is a new message, not a duplicate of an erased one.
    let mut ws =
        WebchatClient::connect(&t.core.ws_url(), &a.channels.webchat.widget_key, &p_visitor)
            .await?;
    let err = ws
        .send_message("c1", Some(&p_ack.conversation_id), "again", WAIT)
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("conversation_not_found")
    );
    let (again, _) = ws.send_message("c1", None, "again", WAIT).await?;
    assert_ne!(again.message_id, p_ack.message_id);
    assert_eq!(again.seq, 1);
    ws.close().await;

    // The trace total kept in memory went down with the erasure: it equals
    // the total a restart counts afresh from the store.
    let logs = |r: &c24_api::admin::retention::RetentionReport| {
        r.categories
            .iter()
            .find(|c| c.category == "access_logs")
            .map(|c| c.records)
    };
    let counted = logs(&t.core.admin.retention().await?);
    let T { core, _tokens, .. } = t;
    let dir = core.stop().await;
    let core = Core::start_in(dir, |c| {
        *c = c.clone().with_dev_clock();
        c.at_rest_encryption = encrypt;
    })
    .await?;
    let recounted = logs(&core.admin.retention().await?);
    assert!(counted.is_some());
    assert_eq!(
        counted, recounted,
        "access_logs records before/after restart"
    );
    Ok(())
}

c24_e2e::both! {
async fn an_erasure_leaves_no_trace_of_the_person_and_others_intact() -> anyhow::Result<()> {
    erasure_leaves_no_trace(true).await
}
}

c24_e2e::both! {
/// The same with encryption at rest off, so a plaintext grep would see
/// anything left behind (deleted rows are zeroed, the WAL truncated).
async fn an_erasure_leaves_no_plaintext_even_without_encryption_at_rest() -> anyhow::Result<()> {
    erasure_leaves_no_trace(false).await
}
}

c24_e2e::both! {
async fn an_export_is_fetched_once_by_the_role_that_filed_it() -> anyhow::Result<()> {
    let mut t = start(true).await?;
    let a = t.core.tenant("Acme", true).await?;
    let b = t.core.tenant("Other", true).await?;
    let visitor = marker("visitor");
    let mut ws =
        WebchatClient::connect(&t.core.ws_url(), &a.channels.webchat.widget_key, &visitor).await?;
    let (ack, _) = ws
        .send_message("c1", None, "Where is my parcel?", WAIT)
        .await?;
    ws.close().await;
    t.core
        .as_tenant(&a)
        .post_message(&ack.conversation_id, "On its way.")
        .await?;
    let body = whatsapp_text(&a, "31655555555", "Pia", "wamid.x1", "Hallo via WhatsApp");
    assert_eq!(t.core.whatsapp(&a, &body, None).await?.status(), 200);

    // Filed by the tenant: a portability export of the visitor.
    let req = t
        .file(
            &a,
            json!({"type": "portability", "subject": {"visitor_id": visitor}}),
        )
        .await?;
    let export_path = format!(
        "/admin/v1/tenants/{}/dsr/{}/export",
        a.id,
        req["id"].as_str().unwrap_or_default()
    );
    let (s, v) = t.get(&export_path, &a.api_key).await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (s, done) = t.complete(&a, &req, json!({})).await?;
    assert_eq!(s, 200, "{done}");
    assert_eq!(done["export"]["state"], "ready");
    assert_eq!(done["export"]["download_role"], "tenant");
    assert_eq!(done["outcome"]["messages"], 2);

    // Not staff, not another tenant: the role that filed it.
    let (s, v) = t.get(&export_path, &t.staff.admin.token).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = t
        .get(&export_path.replace(&a.id, &b.id), &a.api_key)
        .await?;
    assert_eq!(s, 403);
    let export = t
        .core
        .as_tenant(&a)
        .dsr_export(&a.id, req["id"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(export.format, "c24-dsr-export/1");
    assert_eq!(export.contacts.len(), 1);
    assert_eq!(export.contacts[0].identifier, visitor);
    assert_eq!(export.conversations.len(), 1, "only this person's");
    let contents: Vec<&str> = export.conversations[0]
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(contents, ["Where is my parcel?", "On its way."]);
    // Once.
    let (s, v) = t.get(&export_path, &a.api_key).await?;
    assert_eq!((s, v["error"]["code"].as_str()), (410, Some("export_gone")));
    let v = t.dsr(&a, &req).await?;
    assert_eq!(v["export"]["state"], "downloaded");
    let left = Inspector::open(&t.core, Part::Data)
        .await?
        .count("SELECT count(*) FROM dsr_exports", &[])
        .await?;
    assert_eq!(left, 0, "the sealed export is deleted by its download");

    // Filed by staff (an operator) for the WhatsApp number: operator or
    // admin may fetch it, the tenant's key may not.
    let (s, staff_req) = t
        .post(
            &format!("/admin/v1/tenants/{}/dsr", a.id),
            &t.staff.operator.token,
            json!({"type": "access", "subject": {"phone": "+31 6 5555 5555"}}),
        )
        .await?;
    assert_eq!(s, 201, "{staff_req}");
    let (s, _) = t.complete(&a, &staff_req, json!({})).await?;
    assert_eq!(s, 200);
    let path = format!(
        "/admin/v1/tenants/{}/dsr/{}/export",
        a.id,
        staff_req["id"].as_str().unwrap_or_default()
    );
    assert_eq!(t.get(&path, &a.api_key).await?.0, 403);
    assert_eq!(t.get(&path, &t.staff.viewer.token).await?.0, 403);
    let (s, v) = t.get(&path, &t.staff.admin.token).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["conversations"][0]["channel"], "whatsapp");
    assert_eq!(
        v["conversations"][0]["messages"][0]["content"],
        "Hallo via WhatsApp"
    );
    assert_eq!(t.get(&path, &t.staff.operator.token).await?.0, 410);

    // Each download attempt is in the audit log, although it is a read.
    let (_, audit) = t.get("/admin/v1/audit?limit=100", &t.admin()).await?;
    let downloads: Vec<(String, String)> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["action"] == "GET /admin/v1/tenants/{id}/dsr/{dsr_id}/export")
        .map(|i| {
            (
                i["actor"].as_str().unwrap_or_default().to_string(),
                i["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        downloads.contains(&(format!("tenant:{}", a.id), "ok".into())),
        "{downloads:?}"
    );
    assert!(
        downloads.contains(&("ada".into(), "ok".into())),
        "{downloads:?}"
    );
    assert!(
        downloads.contains(&("otto".into(), "export_gone".into())),
        "{downloads:?}"
    );
    Ok(())
}
}

c24_e2e::both! {
async fn a_restriction_stops_ingress_for_the_person_and_keeps_the_data() -> anyhow::Result<()> {
    let mut t = start(true).await?;
    let a = t.core.tenant("Acme", true).await?;
    let phone = "31677777777";
    let first = whatsapp_text(&a, phone, "Rita", "wamid.r1", "first");
    assert_eq!(t.core.whatsapp(&a, &first, None).await?.status(), 200);
    let email = "objector@example.com";
    let (s, _) = t
        .email(&a, &email_raw(email, "O", "o1@x", None, "Hi", "object"))
        .await?;
    assert_eq!(s, 201);
    let visitor = marker("restricted-visitor");
    let mut ws =
        WebchatClient::connect(&t.core.ws_url(), &a.channels.webchat.widget_key, &visitor).await?;
    let (ack, _) = ws.send_message("c1", None, "before", WAIT).await?;
    let before = t.core.message_count(&a).await?;

    let restriction = t
        .file(
            &a,
            json!({"type": "restriction", "subject": {"phone": format!("+{phone}")}}),
        )
        .await?;
    let (s, v) = t.complete(&a, &restriction, json!({})).await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"]["processing_restricted"], true);
    assert_eq!(v["outcome"]["messages"], 1);
    let objection = t
        .file(
            &a,
            json!({"type": "objection", "subject": {"email": email}}),
        )
        .await?;
    assert_eq!(t.complete(&a, &objection, json!({})).await?.0, 200);
    let visitor_req = t
        .file(
            &a,
            json!({"type": "restriction", "subject": {"visitor_id": visitor}}),
        )
        .await?;
    assert_eq!(t.complete(&a, &visitor_req, json!({})).await?.0, 200);

    // Every channel refuses the person, and stores nothing.
    let refused = t
        .core
        .whatsapp(
            &a,
            &whatsapp_text(&a, phone, "Rita", "wamid.r2", "second"),
            None,
        )
        .await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await?["error"]["code"],
        "processing_restricted"
    );
    let (s, v) = t
        .email(&a, &email_raw(email, "O", "o2@x", None, "Hi", "again"))
        .await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (403, Some("processing_restricted"))
    );
    // The open socket: refused per message; a new one at the handshake.
    let err = ws
        .send_message("c2", Some(&ack.conversation_id), "after", WAIT)
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("processing_restricted")
    );
    ws.close().await;
    let err = WebchatClient::connect(&t.core.ws_url(), &a.channels.webchat.widget_key, &visitor)
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("processing_restricted")
    );
    // Agents cannot reply to the person either.
    let err = t
        .core
        .as_tenant(&a)
        .post_message(&ack.conversation_id, "hello?")
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("processing_restricted")
    );
    assert_eq!(t.core.message_count(&a).await?, before);
    // Others are still served; the person's data is kept and readable.
    let other = whatsapp_text(&a, "31688888888", "Sam", "wamid.s1", "fine");
    assert_eq!(t.core.whatsapp(&a, &other, None).await?.status(), 200);
    let kept = t
        .core
        .as_tenant(&a)
        .messages(&ack.conversation_id, 10, None)
        .await?;
    assert_eq!(kept.items[0].content, "before");

    // Still restricted after a restart (loaded from the store).
    let T { core, _tokens, .. } = t;
    let dir = core.stop().await;
    let core = Core::start_in(dir, |c| *c = c.clone().with_dev_clock()).await?;
    let refused = core
        .whatsapp(
            &a,
            &whatsapp_text(&a, phone, "Rita", "wamid.r3", "third"),
            None,
        )
        .await?;
    assert_eq!(refused.status(), 403);
    let err = WebchatClient::connect(&core.ws_url(), &a.channels.webchat.widget_key, &visitor)
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("processing_restricted")
    );
    Ok(())
}
}

c24_e2e::both! {
async fn a_rectification_reseals_the_field() -> anyhow::Result<()> {
    let mut t = start(true).await?;
    let a = t.core.tenant("Acme", true).await?;
    let (s, r) = t
        .email(
            &a,
            &email_raw("old@example.com", "Wrong Name", "r1@x", None, "Hi", "one"),
        )
        .await?;
    assert_eq!(s, 201);
    let conv = r["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s, _) = t
        .email(
            &a,
            &email_raw("taken@example.com", "T", "r2@x", None, "Hi", "two"),
        )
        .await?;
    assert_eq!(s, 201);

    let fix_name = t
        .file(
            &a,
            json!({"type": "rectification", "subject": {"email": "old@example.com"}}),
        )
        .await?;
    let (s, v) = t.complete(&a, &fix_name, json!({})).await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let (s, v) = t
        .complete(&a, &fix_name, json!({"field": "phone", "value": "+31 6 1"}))
        .await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    let (s, v) = t
        .complete(
            &a,
            &fix_name,
            json!({"field": "name", "value": "Right Name"}),
        )
        .await?;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["outcome"]["rectified_field"], "name");
    // The value is not kept in the request.
    assert!(!v.to_string().contains("Right Name"), "{v}");

    let fix_email = t
        .file(
            &a,
            json!({"type": "rectification", "subject": {"email": "old@example.com"}}),
        )
        .await?;
    let (s, v) = t
        .complete(
            &a,
            &fix_email,
            json!({"field": "email", "value": "taken@example.com"}),
        )
        .await?;
    assert_eq!((s, v["error"]["code"].as_str()), (409, Some("conflict")));
    let (s, v) = t
        .complete(
            &a,
            &fix_email,
            json!({"field": "email", "value": "new@example.com"}),
        )
        .await?;
    assert_eq!(s, 200, "{v}");

    // Found under the new address, with the new name; not under the old one.
    let access = t
        .file(
            &a,
            json!({"type": "access", "subject": {"email": "new@example.com"}}),
        )
        .await?;
    assert_eq!(t.complete(&a, &access, json!({})).await?.0, 200);
    let export = t
        .core
        .as_tenant(&a)
        .dsr_export(&a.id, access["id"].as_str().unwrap_or_default())
        .await?;
    assert_eq!(export.contacts[0].identifier, "new@example.com");
    assert_eq!(export.contacts[0].name.as_deref(), Some("Right Name"));
    assert_eq!(export.conversations[0].id, conv);
    let old = t
        .file(
            &a,
            json!({"type": "rectification", "subject": {"email": "old@example.com"}}),
        )
        .await?;
    let (s, v) = t
        .complete(&a, &old, json!({"field": "name", "value": "x"}))
        .await?;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (404, Some("subject_not_found"))
    );
    // Mail from the new address continues the same contact.
    let (s, r) = t
        .email(
            &a,
            &email_raw(
                "new@example.com",
                "Right Name",
                "r3@x",
                Some("r1@x"),
                "Re",
                "three",
            ),
        )
        .await?;
    assert_eq!(
        (s, r["conversation_id"].as_str()),
        (201, Some(conv.as_str()))
    );
    Ok(())
}
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
