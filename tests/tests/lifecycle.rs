//! Restarts, the encryption-mode marker, and TLS.

use c24_api::client::webchat::WebchatClient;
use c24_e2e::{Core, WAIT};

c24_e2e::both! {
async fn data_and_tenants_survive_a_restart() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("A", true).await?;
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (ack, _) = v.send_message("c1", None, "before restart", WAIT).await?;
    v.close().await;
    let dir = core.stop().await;

    let core = Core::start_in(dir, |_| {}).await?;
    let msgs = core
        .as_tenant(&t)
        .messages(&ack.conversation_id, 10, None)
        .await?;
    assert_eq!(msgs.items[0].content, "before restart");
    // Credentials still work after the restart.
    let mut v = WebchatClient::connect(&core.ws_url(), &t.channels.webchat.widget_key, "v").await?;
    let (again, _) = v
        .send_message("c2", Some(&ack.conversation_id), "after", WAIT)
        .await?;
    assert_eq!(again.seq, 2);
    // Resends after the restart are still recognised, with or without the
    // conversation id, and store nothing.
    let (dup, _) = v
        .send_message("c1", Some(&ack.conversation_id), "before restart", WAIT)
        .await?;
    assert_eq!(
        (dup.message_id.as_str(), dup.seq),
        (ack.message_id.as_str(), 1)
    );
    let (dup, _) = v.send_message("c1", None, "before restart", WAIT).await?;
    assert_eq!(dup.message_id, ack.message_id);
    let (dup, _) = v
        .send_message("c2", Some(&ack.conversation_id), "after", WAIT)
        .await?;
    assert_eq!(dup.message_id, again.message_id);
    assert_eq!(core.message_count(&t).await?, 2);
    Ok(())
}
}

c24_e2e::both! {
async fn a_database_refuses_to_reopen_with_the_other_encryption_mode() -> anyhow::Result<()> {
    let dir = Core::start().await?.stop().await;
    let refused = Core::start_in(dir, |c| c.at_rest_encryption = false).await;
    let msg = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("at-rest encryption on"), "{msg}");

    let dir = Core::start_with(|c| c.at_rest_encryption = false)
        .await?
        .stop()
        .await;
    let refused = Core::start_in(dir, |_| {}).await;
    assert!(refused.is_err());
    Ok(())
}
}

c24_e2e::both! {
async fn a_wrong_kek_is_refused_at_start() -> anyhow::Result<()> {
    let core = Core::start().await?;
    core.tenant("A", true).await?;
    let dir = core.stop().await;
    let (_, other) = c24_chatcore::crypto::Kek::generate()?;
    let refused = Core::start_in(dir, |c| c.kek = c24_chatcore::KekSource::Base64(other)).await;
    assert!(refused.is_err());
    Ok(())
}
}

#[cfg(unix)]
c24_e2e::both! {
async fn generated_kek_is_private_to_its_owner() -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let core = Core::start().await?;
    let mode = std::fs::metadata(core.data_dir().join(c24_chatcore::KEK_FILE))?
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    Ok(())
}
}

c24_e2e::both! {
async fn tls_self_signed_serves_https() -> anyhow::Result<()> {
    let core = Core::start_with(|c| c.tls = c24_chatcore::TlsConfig::SelfSigned).await?;
    assert!(core.url().starts_with("https://"));
    let pem = std::fs::read(core.running.dev_cert_path())?;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .build()?;
    let url = core.url().replace("127.0.0.1", "localhost");
    let resp = client.get(format!("{url}/healthz")).send().await?;
    assert_eq!(resp.status(), 200);
    // Plain HTTP on the TLS port does not work.
    let plain = reqwest::get(format!("{}/healthz", url.replace("https", "http"))).await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));
    Ok(())
}
}
