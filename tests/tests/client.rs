//! The typed admin client against a real core: every method, once.

use c24_api::admin::subprocessors::{Announcement, ChangeRequest, ObjectionRequest};
use c24_api::client::{ClientError, TenantQuery};
use c24_e2e::{Core, TotpCodes};
use futures_util::StreamExt;

const ADMIN_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

c24_e2e::both! {
async fn the_client_covers_the_admin_api() -> anyhow::Result<()> {
    let core = Core::start_with(c24_e2e::dev_clock_with_totp(ADMIN_TOTP)).await?;
    let api = &core.admin;
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    assert_eq!(api.healthz().await?["status"], "ok");
    assert_eq!(api.readyz().await?["status"], "ready");

    let mut events = api.events().await?;
    let t = core.tenant("Client", false).await?;
    let t2 = core.tenant("Second", true).await?;
    assert!(!api.sign_dpa(&t.id).await?.retention_state.is_empty());
    assert_eq!(api.suspend(&t.id).await?.status, "suspended");
    assert_eq!(api.resume(&t.id).await?.status, "active");
    let page = api
        .query_tenants(&TenantQuery {
            sort: Some("name".into()),
            order: Some("desc".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await?;
    assert_eq!(page.items[0].name, "Second");
    assert_eq!(page.total, Some(2));
    assert_eq!(api.all_tenants(&TenantQuery::default()).await?.len(), 2);
    assert_eq!(api.tenant(&t.id).await?.name, "Client");

    let th = api.throughput("60s", Some(&t.id)).await?;
    assert_eq!(th.window_ms, 60_000);
    assert_eq!(api.overview().await?.tenants.total, 2);
    assert!(api.metrics().await?.contains("c24_messages_total"));

    let reg = api.subprocessors().await?;
    assert!(reg.items.len() >= 5);
    let effective = (chrono::Utc::now() + chrono::Duration::days(40))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let sp = api
        .announce_subprocessor(
            &Announcement {
                name: "Example Mail Relay".into(),
                category: "Communication Channels".into(),
                purpose: "Outbound email delivery".into(),
                location: "Netherlands".into(),
                safeguard: "DPA".into(),
                data_categories: vec!["email addresses".into()],
                effective_at: effective.clone(),
            },
            &codes.code()?,
        )
        .await?;
    assert!(sp.flags.is_empty());
    let sp = api
        .object(
            &sp.id,
            &ObjectionRequest {
                tenant_id: t2.id.clone(),
                reason: None,
            },
        )
        .await?;
    assert_eq!(sp.objection_count, 1);
    let err = api
        .announce_change(
            &sp.id,
            &ChangeRequest {
                location: Some("United States".into()),
                effective_at: effective,
                ..Default::default()
            },
            "000000",
        )
        .await
        .err();
    assert_eq!(
        err.as_ref().and_then(ClientError::code),
        Some("mfa_invalid")
    );
    // The approval route is there (a wrong code is refused by the guard,
    // not answered 404); registry_live approves for real.
    let err = api.approve_subprocessor(&sp.id, "000000").await.err();
    assert_eq!(
        err.as_ref().and_then(ClientError::code),
        Some("mfa_invalid")
    );
    let feed = api.subprocessor_feed().await?;
    assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
    let retired = api.retire_subprocessor(&sp.id, &codes.code()?).await?;
    assert_eq!(
        retired.status,
        c24_api::admin::subprocessors::Status::Retired
    );

    let r = api.retention().await?;
    assert_eq!(r.categories.len(), 6);
    let now = api.advance_clock(60).await?;
    assert!(now.now_ms > 0);
    let audit = api.audit(10, None).await?;
    assert!(!audit.items.is_empty());

    // Privileged writes with the next half-minute's codes use a second core
    // instance's fresh replay state; here, check the refusals are typed.
    let err = api.terminate(&t.id, "000000").await.err();
    assert_eq!(
        err.as_ref().and_then(ClientError::code),
        Some("mfa_invalid")
    );
    let err = api.purge("000000").await.err();
    assert_eq!(
        err.as_ref().and_then(ClientError::code),
        Some("mfa_invalid")
    );
    let err = api.destroy_key(&t.id, "000000").await.err();
    assert_eq!(
        err.as_ref().and_then(ClientError::code),
        Some("mfa_invalid")
    );

    // The event stream saw the tenant being created.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("stream ended"))??;
        if ev.kind == "tenant.changed" && ev.data["id"] == t.id.as_str() {
            break;
        }
    }
    Ok(())
}
}
