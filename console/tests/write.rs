//! The `--write` actions reach the API: each runs through
//! `source::write::perform` (what the console's write task runs) against a
//! chat core started in-process on 127.0.0.1, and the core's state shows it.

use c24_api::admin::subprocessors::{Announcement, Approval, Status};
use c24_api::client::Client;
use c24_chatcore::Config;
use c24_console::action::WriteAction;
use c24_console::source::write::perform;

const TOKEN: &str = "write-test-admin-token";
const TOTP_SECRET: &str = "KRSXG5CTMVRXEZLUKN2XAZLSKNSWG4TFOQ";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[tokio::test]
async fn approving_a_subprocessor_change_reaches_the_core() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::embedded(dir.path()).with_dev_clock();
    cfg.admin_token = Some(TOKEN.into());
    cfg.admin_totp_secret = Some(TOTP_SECRET.into());
    let core = c24_chatcore::start(cfg).await?;
    let client = Client::new(&core.url(), TOKEN)?;
    let totp = c24_chatcore::access::totp(TOTP_SECRET).map_err(anyhow::Error::msg)?;
    // Each 30-second step is accepted once: this one, then the next.
    let (now_code, next_code) = (totp.generate(unix_now()), totp.generate(unix_now() + 30));

    let effective = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(
        core.clock().now_ms() + 31 * 86_400_000,
    )
    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    .unwrap_or_default();
    let sp = client
        .announce_subprocessor(
            &Announcement {
                name: "Atlas Translate".into(),
                category: "Collaboration Tools".into(),
                purpose: "Machine translation".into(),
                location: "Singapore".into(),
                safeguard: "SCC".into(),
                data_categories: vec!["message content".into()],
                effective_at: effective,
            },
            &now_code,
        )
        .await?;
    assert_eq!(sp.approval, Some(Approval::Pending));

    let action = WriteAction::ApproveSubprocessor {
        id: sp.id.clone(),
        label: sp.name.clone(),
        announced_at: sp.announced_at.clone(),
    };
    assert!(action.needs_totp());
    // A wrong code: refused, explained, nothing changed.
    let window: Vec<String> = (0..4)
        .map(|i| totp.generate(unix_now() + i * 30 - 30))
        .collect();
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| !window.iter().any(|w| w == c))
        .unwrap_or("333333");
    let refused = perform(&client, &action, Some(wrong)).await;
    assert!(!refused.ok, "{}", refused.text);
    assert!(refused.text.contains("TOTP"), "{}", refused.text);
    let still = client.subprocessors().await?;
    let entry = still.items.iter().find(|e| e.id == sp.id);
    assert_eq!(
        entry.and_then(|e| e.approval),
        Some(Approval::Pending),
        "a refused approval changes nothing"
    );

    let done = perform(&client, &action, Some(&next_code)).await;
    assert!(done.ok, "{}", done.text);
    assert!(
        done.text.contains("Atlas Translate approved; takes effect"),
        "{}",
        done.text
    );
    let list = client.subprocessors().await?;
    let entry = list
        .items
        .iter()
        .find(|e| e.id == sp.id)
        .ok_or_else(|| anyhow::anyhow!("the entry is gone"))?;
    assert_eq!(entry.approval, Some(Approval::Approved));
    assert_eq!(entry.approved_by.as_deref(), Some("bootstrap-admin"));
    assert_eq!(entry.status, Status::Proposed, "it waits for its date");
    assert_eq!(list.awaiting_approval, 0);
    // The write is in the audit log.
    let audit = client.audit(10, None).await?;
    assert!(
        audit
            .items
            .iter()
            .any(|a| a.action == "POST /admin/v1/subprocessors/{id}/approve" && a.status == 200),
        "{:?}",
        audit.items
    );
    core.shutdown().await;
    Ok(())
}
