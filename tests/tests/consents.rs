//! Consent records (privacy policy §4.4, §6), driven by the dev clock:
//! consent given and withdrawn per purpose with timestamps, counted; kept
//! while it stands and for 3 years after it ends (its last purpose
//! withdrawn, or the tenant's contract terminated), then purged.

use c24_api::admin::consents::{ConsentStatus, RecordConsent, WithdrawConsent};
use c24_api::admin::dsr::DsrSubject;
use c24_e2e::{Core, TotpCodes};
use chrono::{DateTime, Months, Utc};
use serde_json::{Value, json};

const ADMIN_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

async fn start() -> anyhow::Result<Core> {
    Core::start_with(c24_e2e::dev_clock_with_totp(ADMIN_TOTP)).await
}

fn consent(subject: DsrSubject, purposes: &[&str]) -> RecordConsent {
    RecordConsent {
        subject,
        purposes: purposes.iter().map(|p| p.to_string()).collect(),
        collection_method: "chat widget banner".into(),
        policy_version: "2025-03".into(),
        given_at: None,
    }
}

fn time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)?.with_timezone(&Utc))
}

fn category(r: &Value) -> Value {
    r["categories"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["category"] == "consent_records"))
        .cloned()
        .unwrap_or(Value::Null)
}

c24_e2e::both! {
async fn consent_is_withdrawn_per_purpose_and_kept_three_years_after_it_ends() -> anyhow::Result<()>
{
    let core = start().await?;
    let a = core.tenant("Acme", true).await?;
    let b = core.tenant("Other", true).await?;
    let tenant = core.as_tenant(&a);
    let mail = DsrSubject::email("Dana@Example.com");
    let c = tenant
        .record_consent(&a.id, &consent(mail.clone(), &["newsletter", "surveys"]))
        .await?;
    assert_eq!(c.status, ConsentStatus::Given);
    assert_eq!(c.purposes.len(), 2);
    assert!(c.purge_after.is_none(), "kept while it stands");
    assert_eq!(c.recorded_by, format!("tenant:{}", a.id));
    let other = tenant
        .record_consent(
            &a.id,
            &consent(DsrSubject::visitor_id("v-9"), &["newsletter"]),
        )
        .await?;
    // The identifier is not stored: the record names only its kind.
    let raw = serde_json::to_value(&c)?;
    assert!(!raw.to_string().to_lowercase().contains("dana"), "{raw}");
    // Another tenant's key cannot touch it.
    let err = core.as_tenant(&b).consents(&a.id, None).await.err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("forbidden"));

    // One purpose withdrawn: still kept, counted.
    let w = tenant
        .withdraw_consent(
            &a.id,
            &c.id,
            &WithdrawConsent {
                purposes: Some(vec!["surveys".into()]),
            },
        )
        .await?;
    assert_eq!(w.status, ConsentStatus::Given);
    assert!(w.purposes[1].withdrawn_at.is_some() && w.purposes[0].withdrawn_at.is_none());
    assert!(w.purge_after.is_none());
    let list = tenant.consents(&a.id, None).await?;
    assert_eq!((list.total, list.withdrawn, list.withdrawals), (2, 0, 1));
    let newsletter = list.by_purpose.iter().find(|p| p.purpose == "newsletter");
    assert_eq!(newsletter.map(|p| (p.given, p.withdrawn)), Some((2, 0)));
    // Looked up by the person (the email normalised as for contacts).
    let mine = tenant
        .consents(&a.id, Some(&DsrSubject::email("dana@example.com")))
        .await?;
    assert_eq!(mine.items.len(), 1);
    assert_eq!(mine.items[0].id, c.id);

    // The rest withdrawn: the consent has ended; kept 3 more years.
    let w = tenant
        .withdraw_consent(&a.id, &c.id, &WithdrawConsent::default())
        .await?;
    assert_eq!(w.status, ConsentStatus::Withdrawn);
    let ended = time(w.withdrawn_at.as_deref().unwrap_or_default())?;
    let purge = time(w.purge_after.as_deref().unwrap_or_default())?;
    assert_eq!(Some(purge), ended.checked_add_months(Months::new(36)));
    let again = tenant
        .withdraw_consent(&a.id, &c.id, &WithdrawConsent::default())
        .await
        .err();
    assert_eq!(again.as_ref().and_then(|e| e.code()), Some("invalid_state"));
    let list = tenant.consents(&a.id, None).await?;
    assert_eq!((list.withdrawn, list.withdrawals), (1, 2));

    let report = serde_json::to_value(core.admin.retention().await?)?;
    let cat = category(&report);
    assert_eq!(
        (cat["tracked"].clone(), cat["records"].clone()),
        (json!(true), json!(2))
    );
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    // Just short of 3 years after withdrawal: kept.
    let days = (purge - ended).num_days();
    core.admin.advance_clock((days - 1) * 86_400).await?;
    core.admin.purge(&codes.code()?).await?;
    assert_eq!(tenant.consents(&a.id, None).await?.total, 2);
    // Past it: purged; the standing consent stays.
    core.admin.advance_clock(2 * 86_400).await?;
    let report = serde_json::to_value(core.admin.retention().await?)?;
    assert_eq!(category(&report)["overdue"], 1);
    core.admin.purge(&codes.code()?).await?;
    let list = tenant.consents(&a.id, None).await?;
    assert_eq!(list.total, 1);
    assert_eq!(list.items[0].id, other.id);
    assert_eq!(list.items[0].status, ConsentStatus::Given);
    Ok(())
}
}

c24_e2e::both! {
async fn a_terminated_contract_ends_standing_consents() -> anyhow::Result<()> {
    let core = start().await?;
    let a = core.tenant("Leaving", true).await?;
    let c = core
        .as_tenant(&a)
        .record_consent(
            &a.id,
            &consent(DsrSubject::phone("+31 6 2222 3333"), &["offers"]),
        )
        .await?;
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    let t = core.admin.terminate(&a.id, &codes.code()?).await?;
    let list = core.admin.consents(&a.id, None).await?;
    let ended = &list.items[0];
    assert_eq!(ended.id, c.id);
    assert_eq!(ended.status, ConsentStatus::Ended);
    let terminated = time(t.terminated_at.as_deref().unwrap_or_default())?;
    let purge = time(ended.purge_after.as_deref().unwrap_or_default())?;
    // Consent end (the termination) + 3 years.
    assert!(
        (purge
            - terminated
                .checked_add_months(Months::new(36))
                .unwrap_or(terminated))
        .num_seconds()
        .abs()
            < 5
    );
    // Bad input is refused, nothing recorded.
    let err = core
        .admin
        .record_consent(&a.id, &consent(DsrSubject::default(), &["x"]))
        .await
        .err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("invalid_subject"));
    let err = core
        .admin
        .record_consent(&a.id, &consent(DsrSubject::visitor_id("v"), &[]))
        .await
        .err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("invalid_field"));
    assert_eq!(core.admin.consents(&a.id, None).await?.total, 1);
    Ok(())
}
}
