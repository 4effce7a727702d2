//! The background sources against a real core (started in-process on
//! 127.0.0.1): the tenant list carries each tenant's per-second history
//! (the tenants sparkline), and a focused tenant's detail brings its
//! newest conversations — metadata only.

use std::time::Duration;

use c24_api::admin::tenants::CreateTenant;
use c24_api::client::Client;
use c24_api::client::webchat::WebchatClient;
use c24_chatcore::Config;
use c24_console::source::{Command, SourceMsg, Sources};
use c24_console::store::DetailConversations;
use tokio::sync::mpsc;

const TOKEN: &str = "sources-test-admin-token";
const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn tenant_history_and_detail_conversations_reach_the_store() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::embedded(dir.path()).with_dev_clock();
    cfg.admin_token = Some(TOKEN.into());
    let core = c24_chatcore::start(cfg).await?;
    let admin = Client::new(&core.url(), TOKEN)?;
    let t = admin
        .create_tenant(&CreateTenant {
            name: "Busy".into(),
            dpa_signed: true,
        })
        .await?;
    let mut ws =
        WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (ack, _) = ws
        .send_message("k0", None, "first", Duration::from_secs(10))
        .await?;
    for i in 1..3 {
        ws.send_message(
            &format!("k{i}"),
            Some(&ack.conversation_id),
            "more",
            Duration::from_secs(10),
        )
        .await?;
    }
    admin
        .with_token(&t.api_key)
        .post_message(&ack.conversation_id, "a reply")
        .await?;
    // The history counts complete seconds: move one on.
    admin.advance_clock(1).await?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let sources = Sources::spawn(admin.clone(), Duration::from_millis(200), tx);
    sources.send(Command::Focus(Some(t.id.clone())));
    let deadline = tokio::time::Instant::now() + WAIT;
    let (mut sparkline, mut conversations) = (false, false);
    while !(sparkline && conversations) {
        let msg = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("sparkline {sparkline}, conversations {conversations}"))?
            .ok_or_else(|| anyhow::anyhow!("the sources stopped"))?;
        match msg {
            SourceMsg::TenantsPage { records, .. } => {
                if let Some(r) = records.iter().find(|r| r.id == t.id) {
                    // 4 messages in one second: a mean of 0.8 msg/s in
                    // one 5-second bucket.
                    let total: f32 = r.activity.iter().sum();
                    sparkline |= (total - 0.8).abs() < 1e-3;
                }
            }
            SourceMsg::Detail(record, _, DetailConversations::Rows(convs)) if record.id == t.id => {
                if let [c] = convs.as_slice() {
                    assert_eq!(c.id, ack.conversation_id);
                    assert_eq!(c.channel, "webchat");
                    assert!(c.open);
                    conversations = c.message_count == 4;
                }
            }
            _ => {}
        }
    }
    drop(sources);
    ws.close().await;
    core.shutdown().await;
    Ok(())
}
