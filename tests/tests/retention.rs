//! Tenant lifecycle and the retention engine, driven by the dev clock:
//! suspend keeps data but closes ingress; terminate schedules deletion at
//! +30 days; 31 days later a purge deletes the data and destroys the key.

use c24_api::client::webchat::WebchatClient;
use c24_e2e::inspect::{Arg, Inspector, Part};
use c24_e2e::{Core, TotpCodes, TotpPool, WAIT, dev_clock_with_totp, marker, whatsapp_text};
use serde_json::{Value, json};

const ADMIN_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

struct Admin<'a> {
    core: &'a Core,
    codes: TotpCodes,
}

impl Admin<'_> {
    async fn post(&mut self, path: &str, body: Value, totp: bool) -> anyhow::Result<(u16, Value)> {
        let code = if totp { Some(self.codes.code()?) } else { None };
        self.core
            .post_json(path, &body, None, code.as_deref())
            .await
    }

    /// `POST /admin/v1/tenants/{id}/{action}` with an empty body.
    async fn tenant_action(
        &mut self,
        id: &str,
        action: &str,
        totp: bool,
    ) -> anyhow::Result<(u16, Value)> {
        self.post(&format!("/admin/v1/tenants/{id}/{action}"), json!({}), totp)
            .await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.core.get_json(path, None).await
    }
}

async fn start() -> anyhow::Result<Core> {
    Core::start_with(dev_clock_with_totp(ADMIN_TOTP)).await
}

fn category<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == id))
        .unwrap_or(&Value::Null)
}

c24_e2e::both! {
async fn suspend_closes_ingress_and_keeps_data_resume_reopens() -> anyhow::Result<()> {
    let core = start().await?;
    let mut admin = Admin {
        core: &core,
        codes: TotpCodes::new(ADMIN_TOTP)?,
    };
    let t = core.tenant("Acme", false).await?;
    // Without a DPA: refused; after signing: accepted.
    let wa = whatsapp_text(&t, "31611111111", "X", "wamid.1", "hallo");
    assert_eq!(core.whatsapp(&t, &wa, None).await?.status(), 403);
    let (status, v) = admin.tenant_action(&t.id, "sign-dpa", false).await?;
    assert_eq!(status, 200);
    assert_eq!(v["dpa_signed"], true);
    assert_eq!(core.whatsapp(&t, &wa, None).await?.status(), 200);

    let (status, v) = admin.tenant_action(&t.id, "suspend", false).await?;
    assert_eq!((status, v["status"].as_str()), (200, Some("suspended")));
    let wa2 = whatsapp_text(&t, "31611111111", "X", "wamid.2", "nog een");
    let refused = core.whatsapp(&t, &wa2, None).await?;
    assert_eq!(refused.status(), 403);
    assert_eq!(
        refused.json::<Value>().await?["error"]["code"],
        "tenant_suspended"
    );
    let ws = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await;
    assert_eq!(
        ws.err().as_ref().and_then(|e| e.code()),
        Some("tenant_suspended")
    );
    // The data is kept and readable.
    assert_eq!(core.message_count(&t).await?, 1);

    let (status, v) = admin.tenant_action(&t.id, "resume", false).await?;
    assert_eq!((status, v["status"].as_str()), (200, Some("active")));
    assert_eq!(core.whatsapp(&t, &wa2, None).await?.status(), 200);
    assert_eq!(core.message_count(&t).await?, 2);

    // Lifecycle changes are audited.
    let audit = admin.get("/admin/v1/audit").await?;
    let actions: Vec<_> = audit["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["action"].as_str()).collect())
        .unwrap_or_default();
    for a in [
        "POST /admin/v1/tenants/{id}/suspend",
        "POST /admin/v1/tenants/{id}/resume",
        "POST /admin/v1/tenants/{id}/sign-dpa",
    ] {
        assert!(actions.contains(&a), "{a} not audited");
    }
    Ok(())
}
}

c24_e2e::both! {
async fn terminated_tenant_is_purged_after_30_days_and_its_key_destroyed() -> anyhow::Result<()> {
    let core = start().await?;
    let mut admin = Admin {
        core: &core,
        codes: TotpCodes::new(ADMIN_TOTP)?,
    };
    let gone = core.tenant("Leaving", true).await?;
    let stays = core.tenant("Staying", true).await?;
    let secret = marker("leaving-secret");
    let kept = marker("kept-secret");
    let mut v =
        WebchatClient::connect(&core.ws_url(), &gone.channels.webchat.widget_key, "v1").await?;
    let (ack, _) = v.send_message("c1", None, &secret, WAIT).await?;
    v.close().await;
    let wa = whatsapp_text(&gone, "31622222222", "Y", "wamid.g", &secret);
    assert_eq!(core.whatsapp(&gone, &wa, None).await?.status(), 200);
    let mut v =
        WebchatClient::connect(&core.ws_url(), &stays.channels.webchat.widget_key, "v2").await?;
    let (kept_ack, _) = v.send_message("c1", None, &kept, WAIT).await?;
    v.close().await;

    // Terminate: ingress closes, deletion is scheduled 30 days out.
    let (status, t) = admin.tenant_action(&gone.id, "terminate", true).await?;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["status"], "terminated");
    assert_eq!(t["retention_state"], "purge_scheduled");
    let terminated =
        chrono::DateTime::parse_from_rfc3339(t["terminated_at"].as_str().unwrap_or_default())?;
    let purge_after =
        chrono::DateTime::parse_from_rfc3339(t["purge_after"].as_str().unwrap_or_default())?;
    assert_eq!((purge_after - terminated).num_days(), 30);
    let refused = core
        .whatsapp(
            &gone,
            &whatsapp_text(&gone, "316", "Y", "wamid.h", "x"),
            None,
        )
        .await?;
    assert_eq!(
        refused.json::<Value>().await?["error"]["code"],
        "tenant_terminated"
    );

    let r = admin.get("/admin/v1/retention").await?;
    let eu = category(&r, "end_user_data");
    assert_eq!(eu["overdue"], 0);
    assert!(eu["records"].as_i64().unwrap_or(0) >= 4, "{eu}");
    assert_eq!(eu["policy"], "contract termination + 30 days");

    // 29.5 days on: due within 24 h, nothing purged yet.
    let advance = |secs: i64| json!({"seconds": secs});
    assert_eq!(
        admin
            .post(
                "/admin/v1/clock/advance",
                advance(29 * 86400 + 43200),
                false
            )
            .await?
            .0,
        200
    );
    let r = admin.get("/admin/v1/retention").await?;
    let eu = category(&r, "end_user_data");
    assert!(eu["due_24h"].as_i64().unwrap_or(0) > 0, "{eu}");
    assert_eq!(eu["overdue"], 0);

    // Day 31: overdue, then a manual purge deletes it and shreds the key.
    assert_eq!(
        admin
            .post("/admin/v1/clock/advance", advance(86400 + 43200), false)
            .await?
            .0,
        200
    );
    let r = admin.get("/admin/v1/retention").await?;
    let eu = category(&r, "end_user_data");
    assert!(eu["overdue"].as_i64().unwrap_or(0) >= 4, "{eu}");
    assert!(eu["oldest_overdue_age_s"].as_i64().unwrap_or(0) > 0);
    let (status, run) = admin
        .post("/admin/v1/retention/purge", json!({}), true)
        .await?;
    assert_eq!(status, 200, "{run}");
    assert!(run["rows_deleted"].as_u64().unwrap_or(0) >= 4, "{run}");
    assert_eq!(run["keys_destroyed"], json!([gone.id]));

    let t = admin.get(&format!("/admin/v1/tenants/{}", gone.id)).await?;
    assert_eq!(t["status"], "purged");
    assert!(t["key_destroyed_at"].is_string());
    assert_eq!(t["stored_messages"], 0);
    let r = admin.get("/admin/v1/retention").await?;
    assert_eq!(category(&r, "end_user_data")["overdue"], 0);
    assert!(r["last_purge"]["rows_deleted"].as_u64().unwrap_or(0) >= 4);

    // The purged tenant's conversation is gone; the other tenant's is intact.
    let err = core
        .admin
        .messages(&ack.conversation_id, 10, None)
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("conversation_not_found")
    );
    let intact = core
        .as_tenant(&stays)
        .messages(&kept_ack.conversation_id, 10, None)
        .await?;
    assert_eq!(intact.items[0].content, kept);
    Ok(())
}
}

c24_e2e::both! {
async fn destroying_the_key_makes_remaining_rows_unreadable_across_restarts() -> anyhow::Result<()>
{
    let core = start().await?;
    let mut admin = Admin {
        core: &core,
        codes: TotpCodes::new(ADMIN_TOTP)?,
    };
    let t = core.tenant("Shred", true).await?;
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (ack, _) = v.send_message("c1", None, "sealed forever", WAIT).await?;
    v.close().await;

    // Only a terminated tenant's key can be destroyed.
    let (status, v) = admin.tenant_action(&t.id, "destroy-key", true).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("invalid_state"))
    );
    let (status, _) = admin.tenant_action(&t.id, "terminate", true).await?;
    assert_eq!(status, 200);
    // The wrapped key as stored, to look for after it is destroyed.
    let wrapped: Vec<u8> = Inspector::open(&core, Part::Keyring)
        .await?
        .rows(
            "SELECT wrapped_dek FROM tenant_keys WHERE tenant_id = ?1",
            &[Arg::Text(&t.id)],
        )
        .await?
        .first()
        .and_then(|r| r[0].clone())
        .ok_or_else(|| anyhow::anyhow!("no wrapped key stored for {}", t.id))?;
    assert!(!core.stored(&wrapped).await?.is_empty());
    let dir = core.stop().await;
    // The steps used stay used after a restart on PostgreSQL (a code is
    // good once per database): the restarted server's write is another
    // staff token's.
    let staff_dir = tempfile::tempdir()?;
    let tokens = staff_dir.path().join("tokens.toml");
    let mut staff = TotpPool::add_to(&tokens, "shredder", "admin", 1)?;
    let core = Core::start_in(dir, |c| {
        dev_clock_with_totp(ADMIN_TOTP)(c);
        c.tokens_file = Some(tokens.clone());
    })
    .await?;
    let (token, code) = staff.code()?;
    let (status, v) = core
        .post_json(
            &format!("/admin/v1/tenants/{}/destroy-key", t.id),
            &json!({}),
            Some(&token),
            Some(&code),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "purged");
    assert!(v["key_destroyed_at"].is_string());
    // At once, not only after a restart: no file holds the wrapped key.
    assert!(core.stored(&wrapped).await?.is_empty());
    // The rows are still there (not yet due) but can no longer be opened.
    let read = core
        .admin
        .messages(&ack.conversation_id, 10, None)
        .await
        .err();
    assert_eq!(read.as_ref().and_then(|e| e.code()), Some("key_destroyed"));

    // After a restart the key stays gone; the tenant loads as purged.
    let dir = core.stop().await;
    let core = Core::start_in(dir, |_| {}).await?;
    let t2 = core.admin.tenant(&t.id).await?;
    assert_eq!(t2.status, "purged");
    assert!(t2.key_destroyed_at.is_some());
    let read = core
        .admin
        .messages(&ack.conversation_id, 10, None)
        .await
        .err();
    assert_eq!(read.as_ref().and_then(|e| e.code()), Some("key_destroyed"));
    assert!(core.stored(b"sealed forever").await?.is_empty());
    // No copy of the wrapped key is left in any file (database, WAL, side files).
    assert!(core.stored(&wrapped).await?.is_empty());
    Ok(())
}
}

c24_e2e::both! {
async fn access_logs_are_purged_after_90_days() -> anyhow::Result<()> {
    let core = start().await?;
    let mut admin = Admin {
        core: &core,
        codes: TotpCodes::new(ADMIN_TOTP)?,
    };
    core.tenant("Logged", true).await?;
    let before = admin.get("/admin/v1/audit").await?;
    assert!(
        !before["items"]
            .as_array()
            .map(Vec::is_empty)
            .unwrap_or(true)
    );
    assert_eq!(
        admin
            .post(
                "/admin/v1/clock/advance",
                json!({"seconds": 91 * 86400}),
                false
            )
            .await?
            .0,
        200
    );
    let r = admin.get("/admin/v1/retention").await?;
    assert!(category(&r, "access_logs")["overdue"].as_i64().unwrap_or(0) >= 1);
    let (status, run) = admin
        .post("/admin/v1/retention/purge", json!({}), true)
        .await?;
    assert_eq!(status, 200);
    assert!(run["rows_deleted"].as_u64().unwrap_or(0) >= 1);
    // Only the entries written after the advance remain (the advance and the purge).
    let after = admin.get("/admin/v1/audit").await?;
    let actions: Vec<_> = after["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(!actions.contains(&"POST /admin/v1/tenants"), "{actions:?}");
    Ok(())
}
}

// SQLite only: the core's own backups copy its SQLite files (on
// PostgreSQL the database is backed up by its own tools; see the README).
#[tokio::test]
async fn backups_are_counted_and_deleted_after_7_days() -> anyhow::Result<()> {
    let backups = tempfile::tempdir()?;
    let dir = backups.path().to_path_buf();
    let core = Core::start_with(|c| {
        *c = c.clone().with_dev_clock();
        c.admin_totp_secret = Some(ADMIN_TOTP.into());
        c.backup_dir = Some(dir);
    })
    .await?;
    let mut admin = Admin {
        core: &core,
        codes: TotpCodes::new(ADMIN_TOTP)?,
    };
    core.tenant("Backed up", true).await?;
    let kek = c24_chatcore::crypto::Kek::from_file(&core.data_dir().join(c24_chatcore::KEK_FILE))?;
    let made = c24_chatcore::backup::create(
        core.data_dir(),
        backups.path(),
        &kek,
        core.running.clock().now_ms(),
    )?;
    let r = admin.get("/admin/v1/retention").await?;
    let b = category(&r, "backups");
    assert_eq!(
        (b["tracked"].as_bool(), b["records"].as_i64()),
        (Some(true), Some(1))
    );
    assert_eq!(b["overdue"], 0);
    assert_eq!(b["policy"], "7 days");

    // Six and a half days on: due within 24 h; eight days on: overdue, then purged.
    let advance = |secs: i64| json!({"seconds": secs});
    admin
        .post("/admin/v1/clock/advance", advance(6 * 86400 + 43200), false)
        .await?;
    let r = admin.get("/admin/v1/retention").await?;
    assert_eq!(category(&r, "backups")["due_24h"], 1);
    admin
        .post("/admin/v1/clock/advance", advance(86400 + 43200), false)
        .await?;
    let r = admin.get("/admin/v1/retention").await?;
    assert_eq!(category(&r, "backups")["overdue"], 1);
    assert!(made.file.exists());
    let (status, _) = admin
        .post("/admin/v1/retention/purge", json!({}), true)
        .await?;
    assert_eq!(status, 200);
    assert!(
        !made.file.exists(),
        "a backup older than 7 days is still there"
    );
    let r = admin.get("/admin/v1/retention").await?;
    assert_eq!(category(&r, "backups")["records"], 0);
    Ok(())
}
