//! Personal-data breach records (privacy policy §11), driven by the dev
//! clock: each affected controller's 48 h clock turns overdue at 48 h and
//! not before; the authority's 72 h clock exists only where the platform is
//! the controller; the people's clock ("without undue delay") only for a
//! high risk; each notification is recorded with its time and stops its
//! clock; records are kept 3 years and then purged.

use c24_api::admin::incidents::{CreateIncident, NotifyTarget, RecordNotification};
use c24_e2e::{Core, TotpCodes, write_tokens_file};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const ADMIN_TOTP: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

async fn start() -> anyhow::Result<(Core, c24_e2e::StaffTokens, tempfile::TempDir)> {
    let tokens = tempfile::tempdir()?;
    let (tokens_file, staff) = write_tokens_file(tokens.path())?;
    let core = Core::start_with(|c| {
        *c = c.clone().with_dev_clock();
        c.tokens_file = Some(tokens_file);
        c.admin_totp_secret = Some(ADMIN_TOTP.into());
    })
    .await?;
    Ok((core, staff, tokens))
}

async fn advance(core: &Core, seconds: i64) -> anyhow::Result<()> {
    core.admin.advance_clock(seconds).await?;
    Ok(())
}

fn breach(tenants: &[&str], controller: bool, high_risk: bool) -> CreateIncident {
    CreateIncident {
        aware_at: None,
        nature: "Misconfigured bucket exposed message exports".into(),
        categories: vec!["message bodies".into(), "phone numbers".into()],
        records: 1200,
        subjects: 300,
        affected_tenants: tenants.iter().map(|t| t.to_string()).collect(),
        consequences: "Messages readable by third parties".into(),
        measures: "Bucket closed, access logs reviewed".into(),
        platform_is_controller: controller,
        high_risk,
    }
}

fn secs_between(a: &str, b: &str) -> anyhow::Result<i64> {
    let a = DateTime::parse_from_rfc3339(a)?.with_timezone(&Utc);
    let b = DateTime::parse_from_rfc3339(b)?.with_timezone(&Utc);
    Ok((b - a).num_seconds())
}

c24_e2e::both! {
async fn the_48_hour_clock_turns_overdue_at_48_hours_and_not_before() -> anyhow::Result<()> {
    let (core, staff, _tokens) = start().await?;
    let a = core.tenant("Acme", true).await?;
    let b = core.tenant("Bolt", true).await?;
    let op = core.admin.with_token(&staff.operator.token);
    let i = op
        .record_incident(&breach(&[&a.id, &b.id], false, false))
        .await?;
    assert_eq!(i.clocks.controllers.len(), 2);
    assert!(
        i.clocks.authority.is_none(),
        "the platform is processor here"
    );
    assert!(i.clocks.subjects.is_none());
    assert!(i.open && !i.overdue);
    let c = &i.clocks.controllers[0];
    assert_eq!(secs_between(&i.aware_at, &c.deadline_at)?, 48 * 3600);
    assert!(c.notified_at.is_none());
    assert!(c.seconds_left > 48 * 3600 - 60);
    assert_eq!(core.admin.overview().await?.incidents_open, Some(1));

    // A minute before 48 h: time left, not overdue.
    advance(&core, 48 * 3600 - 60).await?;
    let v = core.admin.incident(&i.id).await?;
    for c in &v.clocks.controllers {
        assert!(!c.overdue, "{c:?}");
        assert!((1..=60).contains(&c.seconds_left), "{c:?}");
    }
    assert!(!v.overdue);
    // Notify Acme's controller in time.
    let v = op
        .record_notification(
            &i.id,
            &RecordNotification {
                to: NotifyTarget::Controller,
                tenant_id: Some(a.id.clone()),
            },
        )
        .await?;
    assert!(v.clocks.controllers[0].notified_at.is_some());
    assert_eq!(v.notifications[0].by, "otto");

    // A minute after 48 h: Bolt's clock is overdue, Acme's is stopped in time.
    advance(&core, 120).await?;
    let v = core.admin.incident(&i.id).await?;
    let (acme, bolt) = (&v.clocks.controllers[0], &v.clocks.controllers[1]);
    assert_eq!(acme.tenant_id, a.id);
    assert!(!acme.overdue && acme.seconds_left > 0, "{acme:?}");
    assert!(bolt.overdue && bolt.seconds_left < 0, "{bolt:?}");
    assert!(v.overdue && v.open);
    // Notified late: no longer overdue, the lateness kept.
    let v = op
        .record_notification(
            &i.id,
            &RecordNotification {
                to: NotifyTarget::Controller,
                tenant_id: Some(b.id.clone()),
            },
        )
        .await?;
    let bolt = &v.clocks.controllers[1];
    assert!(!bolt.overdue && bolt.seconds_left < 0, "{bolt:?}");
    assert!(!v.open && !v.overdue);
    assert_eq!(core.admin.overview().await?.incidents_open, Some(0));
    let again = op
        .record_notification(
            &i.id,
            &RecordNotification {
                to: NotifyTarget::Controller,
                tenant_id: Some(b.id.clone()),
            },
        )
        .await
        .err();
    assert_eq!(
        again.as_ref().and_then(|e| e.code()),
        Some("already_notified")
    );
    // A viewer reads; only staff, not tenants, see incidents.
    let viewer = core.admin.with_token(&staff.viewer.token);
    assert_eq!(viewer.incidents().await?.items.len(), 1);
    let err = core.as_tenant(&a).incidents().await.err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("forbidden"));
    let err = viewer
        .record_incident(&breach(&[], false, false))
        .await
        .err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("forbidden"));
    Ok(())
}
}

c24_e2e::both! {
async fn authority_and_people_clocks_follow_the_role_and_the_risk() -> anyhow::Result<()> {
    let (core, staff, _tokens) = start().await?;
    let op = core.admin.with_token(&staff.operator.token);
    // The platform's own customer data, high risk, known for 70 hours already.
    let aware =
        DateTime::<Utc>::from_timestamp_millis(core.running.clock().now_ms() - 70 * 3_600_000)
            .unwrap_or_default()
            .to_rfc3339();
    let mut req = breach(&[], true, true);
    req.aware_at = Some(aware);
    let i = op.record_incident(&req).await?;
    assert!(i.clocks.controllers.is_empty());
    let authority = i
        .clocks
        .authority
        .clone()
        .unwrap_or_else(|| panic!("no authority clock"));
    assert_eq!(
        secs_between(&i.aware_at, &authority.deadline_at)?,
        72 * 3600
    );
    assert!(!authority.overdue);
    assert!(
        (2 * 3600 - 60..=2 * 3600).contains(&authority.seconds_left),
        "{authority:?}"
    );
    // Without undue delay: due at awareness, overdue until the people are told.
    let people = i
        .clocks
        .subjects
        .clone()
        .unwrap_or_else(|| panic!("no subjects clock"));
    assert_eq!(people.deadline_at, i.aware_at);
    assert!(people.overdue && people.seconds_left <= -70 * 3600);
    let v = op
        .record_notification(
            &i.id,
            &RecordNotification {
                to: NotifyTarget::Subjects,
                tenant_id: None,
            },
        )
        .await?;
    assert!(
        v.clocks
            .subjects
            .as_ref()
            .is_some_and(|c| !c.overdue && c.notified_at.is_some())
    );
    advance(&core, 2 * 3600 + 60).await?;
    let v = core.admin.incident(&i.id).await?;
    assert!(
        v.clocks.authority.as_ref().is_some_and(|c| c.overdue),
        "{v:?}"
    );

    // Only clocks the incident has: a processor-side breach has no authority clock.
    let j = op.record_incident(&breach(&[], false, false)).await?;
    assert!(!j.open);
    let err = op
        .record_notification(
            &j.id,
            &RecordNotification {
                to: NotifyTarget::Authority,
                tenant_id: None,
            },
        )
        .await
        .err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("no_such_clock"));
    // Awareness cannot be in the future; affected tenants must exist.
    let mut future = breach(&[], false, false);
    future.aware_at = Some("2999-01-01T00:00:00Z".into());
    let err = op.record_incident(&future).await.err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("invalid_field"));
    let err = op
        .record_incident(&breach(&["nope"], false, false))
        .await
        .err();
    assert_eq!(err.as_ref().and_then(|e| e.code()), Some("unknown_tenant"));
    Ok(())
}
}

c24_e2e::both! {
async fn incident_records_are_kept_three_years_then_purged() -> anyhow::Result<()> {
    let (core, staff, _tokens) = start().await?;
    let op = core.admin.with_token(&staff.operator.token);
    let i = op.record_incident(&breach(&[], false, false)).await?;
    let aware = DateTime::parse_from_rfc3339(&i.aware_at)?.with_timezone(&Utc);
    let purge = DateTime::parse_from_rfc3339(&i.purge_after)?.with_timezone(&Utc);
    assert_eq!(
        purge,
        aware
            .checked_add_months(chrono::Months::new(36))
            .unwrap_or(aware)
    );

    let category = |r: &Value| {
        r["categories"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["category"] == "security_incidents"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let report = serde_json::to_value(core.admin.retention().await?)?;
    let c = category(&report);
    assert_eq!(
        (
            c["tracked"].clone(),
            c["records"].clone(),
            c["overdue"].clone()
        ),
        (json!(true), json!(1), json!(0))
    );

    // Just short of 3 years: kept, even by a purge.
    let days = (purge - aware).num_days();
    advance(&core, (days - 1) * 86_400).await?;
    let mut codes = TotpCodes::new(ADMIN_TOTP)?;
    core.admin.purge(&codes.code()?).await?;
    assert!(core.admin.incident(&i.id).await.is_ok());
    // Past 3 years: overdue, and the purge deletes it.
    advance(&core, 2 * 86_400).await?;
    let report = serde_json::to_value(core.admin.retention().await?)?;
    assert_eq!(category(&report)["overdue"], 1);
    let run = core.admin.purge(&codes.code()?).await?;
    assert!(run.rows_deleted >= 1);
    let gone = core.admin.incident(&i.id).await.err();
    assert_eq!(
        gone.as_ref().and_then(|e| e.code()),
        Some("incident_not_found")
    );
    Ok(())
}
}
