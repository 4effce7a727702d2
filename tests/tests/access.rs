//! Tokens and tenant isolation on the agent and admin APIs; JSON errors for
//! unknown routes and bad bodies.

use c24_api::client::webchat::WebchatClient;
use c24_e2e::{Core, WAIT};
use reqwest::Method;
use serde_json::Value;

async fn code(resp: reqwest::Response) -> anyhow::Result<(u16, String)> {
    let status = resp.status().as_u16();
    let v: Value = resp.json().await?;
    Ok((
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_string(),
    ))
}

c24_e2e::both! {
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
}

/// Method, path, bearer token, raw body (sent without a Content-Type),
/// expected status and error code.
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    Option<Vec<u8>>,
    u16,
    &'a str,
);

c24_e2e::both! {
async fn wrong_tokens_and_bad_requests_get_json_errors() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let t = core.tenant("A", true).await?;
    let admin = core.running.admin_token();
    let key = t.api_key.as_str();
    let (get, post) = (Method::GET, Method::POST);
    let cases: Vec<Case> = vec![
        (
            get.clone(),
            "/v1/conversations",
            None,
            None,
            401,
            "unauthorized",
        ),
        (
            get.clone(),
            "/v1/conversations",
            Some("nope"),
            None,
            401,
            "unauthorized",
        ),
        (
            get.clone(),
            "/admin/v1/tenants",
            None,
            None,
            401,
            "unauthorized",
        ),
        (
            get.clone(),
            "/admin/v1/tenants",
            Some("nope"),
            None,
            401,
            "unauthorized",
        ),
        (
            get.clone(),
            "/admin/v1/tenants",
            Some(key),
            None,
            403,
            "forbidden",
        ),
        (
            get.clone(),
            "/admin/v1/tenants/unknown",
            Some(admin),
            None,
            404,
            "tenant_not_found",
        ),
        (
            post.clone(),
            "/admin/v1/tenants",
            Some(admin),
            Some(b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            post.clone(),
            "/admin/v1/tenants",
            Some(admin),
            Some(br#"{"name":"x","dpa_signed":true,"colour":"red"}"#.to_vec()),
            400,
            "invalid_json",
        ),
        (
            post.clone(),
            "/admin/v1/tenants",
            Some(admin),
            Some(br#"{"name":"  "}"#.to_vec()),
            400,
            "invalid_name",
        ),
        (
            post.clone(),
            "/admin/v1/tenants",
            Some(admin),
            Some(vec![b' '; 100 * 1024]),
            413,
            "payload_too_large",
        ),
        (get.clone(), "/no/such/route", None, None, 404, "not_found"),
        (
            Method::DELETE,
            "/healthz",
            None,
            None,
            405,
            "method_not_allowed",
        ),
        (
            get,
            "/v1/conversations?limit=5000",
            Some(key),
            None,
            400,
            "invalid_query",
        ),
        (
            post,
            "/v1/conversations/unknown/messages",
            Some(key),
            Some(br#"{"content":"x"}"#.to_vec()),
            404,
            "conversation_not_found",
        ),
    ];
    for (method, path, token, body, status, want) in cases {
        let mut req = core
            .http
            .request(method.clone(), format!("{}{path}", core.url()));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        let got = code(req.send().await?).await?;
        assert_eq!(got, (status, want.to_string()), "{method} {path}");
    }
    // Nothing was created by the refused creates.
    assert_eq!(core.admin.list_tenants().await?.items.len(), 1);
    Ok(())
}
}

c24_e2e::both! {
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
}
