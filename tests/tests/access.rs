//! Tokens and tenant isolation on the agent and admin APIs; JSON errors for
//! unknown routes and bad bodies.

use c24_api::client::webchat::WebchatClient;
use c24_e2e::{Core, WAIT};
use serde_json::Value;

async fn code(resp: reqwest::Response) -> anyhow::Result<(u16, String)> {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await?;
    Ok((
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    ))
}

#[tokio::test]
async fn one_tenants_key_never_reads_another_tenants_data() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let a = core.tenant("A", true).await?;
    let b = core.tenant("B", true).await?;
    let mut v = WebchatClient::connect(&core.ws_url(), &a.channels.webchat.widget_key, "v").await?;
    let (ack, _) = v.send_message("c1", None, "A's secret", WAIT).await?;
    let conv = ack.conversation_id;

    let as_b = core.as_tenant(&b);
    assert!(as_b.conversations().await?.items.is_empty());
    let err = as_b.messages(&conv, 10, None).await.err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("conversation_not_found")
    );
    let err = as_b.post_message(&conv, "hijack").await.err();
    assert_eq!(
        err.as_ref().and_then(|e| e.code()),
        Some("conversation_not_found")
    );

    // The admin token reads any tenant's, naming it.
    let r = core
        .http
        .get(format!("{}/v1/conversations?tenant={}", core.url(), a.id))
        .bearer_auth(core.running.admin_token())
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await?["items"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(core.message_count(&a).await?, 1);
    Ok(())
}

#[tokio::test]
async fn wrong_tokens_and_bad_requests_get_json_errors() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("A", true).await?;
    let url = core.url();
    let h = &core.http;
    let admin = core.running.admin_token();
    let cases = vec![
        (
            h.get(format!("{url}/v1/conversations")).send().await?,
            401,
            "unauthorized",
        ),
        (
            h.get(format!("{url}/v1/conversations"))
                .bearer_auth("nope")
                .send()
                .await?,
            401,
            "unauthorized",
        ),
        (
            h.get(format!("{url}/admin/v1/tenants")).send().await?,
            401,
            "unauthorized",
        ),
        (
            h.get(format!("{url}/admin/v1/tenants"))
                .bearer_auth("nope")
                .send()
                .await?,
            401,
            "unauthorized",
        ),
        (
            h.get(format!("{url}/admin/v1/tenants"))
                .bearer_auth(&t.api_key)
                .send()
                .await?,
            403,
            "forbidden",
        ),
        (
            h.get(format!("{url}/admin/v1/tenants/unknown"))
                .bearer_auth(admin)
                .send()
                .await?,
            404,
            "tenant_not_found",
        ),
        (
            h.post(format!("{url}/admin/v1/tenants"))
                .bearer_auth(admin)
                .body("{")
                .send()
                .await?,
            400,
            "invalid_json",
        ),
        (
            h.post(format!("{url}/admin/v1/tenants"))
                .bearer_auth(admin)
                .body(r#"{"name":"x","dpa_signed":true,"colour":"red"}"#)
                .send()
                .await?,
            400,
            "invalid_json",
        ),
        (
            h.post(format!("{url}/admin/v1/tenants"))
                .bearer_auth(admin)
                .body(r#"{"name":"  "}"#)
                .send()
                .await?,
            400,
            "invalid_name",
        ),
        (
            h.post(format!("{url}/admin/v1/tenants"))
                .bearer_auth(admin)
                .body(vec![b' '; 100 * 1024])
                .send()
                .await?,
            413,
            "payload_too_large",
        ),
        (
            h.get(format!("{url}/no/such/route")).send().await?,
            404,
            "not_found",
        ),
        (
            h.delete(format!("{url}/healthz")).send().await?,
            405,
            "method_not_allowed",
        ),
        (
            h.get(format!("{url}/v1/conversations?limit=5000"))
                .bearer_auth(&t.api_key)
                .send()
                .await?,
            400,
            "invalid_query",
        ),
        (
            h.post(format!("{url}/v1/conversations/unknown/messages"))
                .bearer_auth(&t.api_key)
                .body(r#"{"content":"x"}"#)
                .send()
                .await?,
            404,
            "conversation_not_found",
        ),
    ];
    for (resp, status, want) in cases {
        assert_eq!(code(resp).await?, (status, want.to_string()));
    }
    // Nothing was created by the refused creates.
    assert_eq!(core.admin.list_tenants().await?.items.len(), 1);
    Ok(())
}

#[tokio::test]
async fn tenant_list_carries_no_secrets() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("A", true).await?;
    let text = core
        .http
        .get(format!("{}/admin/v1/tenants", core.url()))
        .bearer_auth(core.running.admin_token())
        .send()
        .await?
        .text()
        .await?;
    for secret in [
        &t.api_key,
        &t.channels.webchat.widget_key,
        &t.channels.whatsapp.app_secret,
        &t.channels.whatsapp.verify_token,
        &t.channels.email.signing_key,
    ] {
        assert!(!text.contains(secret.as_str()));
    }
    let one = core.admin.tenant(&t.id).await?;
    assert_eq!(one.name, "A");
    assert!(one.dpa_signed);
    assert_eq!(one.status, "active");
    Ok(())
}
