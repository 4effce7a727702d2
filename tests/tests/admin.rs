//! The admin API's access control: every admin route against no token, a
//! bad token, a tenant key, each role, and a missing/wrong/unenrolled second
//! factor; and the audit log that records the writes.

use std::collections::BTreeSet;

use c24_e2e::{Core, TotpCodes, write_tokens_file};
use reqwest::Method;
use serde_json::Value;

/// (method, path template, least role, needs TOTP, tenant key allowed) —
/// written out independently of the server's own table, which it must match.
const EXPECTED: &[(&str, &str, &str, bool, bool)] = &[
    ("GET", "/admin/v1/tenants", "viewer", false, false),
    ("POST", "/admin/v1/tenants", "operator", false, false),
    ("GET", "/admin/v1/tenants/{id}", "viewer", false, false),
    (
        "GET",
        "/admin/v1/tenants/{id}/conversations",
        "viewer",
        false,
        false,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/sign-dpa",
        "operator",
        false,
        false,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/suspend",
        "operator",
        false,
        false,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/resume",
        "operator",
        false,
        false,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/terminate",
        "admin",
        true,
        false,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/destroy-key",
        "admin",
        true,
        false,
    ),
    ("GET", "/admin/v1/throughput", "viewer", false, false),
    ("GET", "/admin/v1/overview", "viewer", false, false),
    ("GET", "/admin/v1/events", "viewer", false, false),
    ("GET", "/admin/v1/retention", "viewer", false, false),
    ("POST", "/admin/v1/retention/purge", "operator", true, false),
    ("GET", "/admin/v1/traffic/trace", "operator", false, false),
    ("GET", "/admin/v1/subprocessors", "viewer", false, false),
    ("POST", "/admin/v1/subprocessors", "admin", true, false),
    (
        "POST",
        "/admin/v1/subprocessors/{id}/changes",
        "admin",
        true,
        false,
    ),
    (
        "POST",
        "/admin/v1/subprocessors/{id}/approve",
        "admin",
        true,
        false,
    ),
    (
        "POST",
        "/admin/v1/subprocessors/{id}/retire",
        "admin",
        true,
        false,
    ),
    (
        "POST",
        "/admin/v1/subprocessors/{id}/objections",
        "operator",
        false,
        true,
    ),
    (
        "GET",
        "/admin/v1/subprocessors/feed.json",
        "viewer",
        false,
        true,
    ),
    ("GET", "/admin/v1/audit", "viewer", false, false),
    ("POST", "/admin/v1/clock/advance", "admin", false, false),
    (
        "POST",
        "/admin/v1/tenants/{id}/dsr",
        "operator",
        false,
        true,
    ),
    ("GET", "/admin/v1/tenants/{id}/dsr", "viewer", false, true),
    (
        "GET",
        "/admin/v1/tenants/{id}/dsr/{dsr_id}",
        "viewer",
        false,
        true,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/dsr/{dsr_id}/extend",
        "operator",
        false,
        true,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/dsr/{dsr_id}/complete",
        "operator",
        true,
        false,
    ),
    (
        "GET",
        "/admin/v1/tenants/{id}/dsr/{dsr_id}/export",
        "operator",
        false,
        true,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/consents",
        "operator",
        false,
        true,
    ),
    (
        "POST",
        "/admin/v1/tenants/{id}/consents/{consent_id}/withdraw",
        "operator",
        false,
        true,
    ),
    (
        "GET",
        "/admin/v1/tenants/{id}/consents",
        "viewer",
        false,
        true,
    ),
    ("POST", "/admin/v1/incidents", "operator", false, false),
    ("GET", "/admin/v1/incidents", "viewer", false, false),
    ("GET", "/admin/v1/incidents/{id}", "viewer", false, false),
    (
        "POST",
        "/admin/v1/incidents/{id}/notifications",
        "operator",
        false,
        false,
    ),
];

fn rank(role: &str) -> u8 {
    match role {
        "viewer" => 0,
        "operator" => 1,
        _ => 2,
    }
}

async fn call(
    core: &Core,
    method: &str,
    path: &str,
    token: Option<&str>,
    totp: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let method = Method::from_bytes(method.as_bytes())?;
    let mut req = core
        .http
        .request(method.clone(), format!("{}{path}", core.url()))
        .timeout(std::time::Duration::from_secs(10));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(code) = totp {
        req = req.header("X-C24-TOTP", code);
    }
    if method == Method::POST {
        req = req.header("Content-Type", "application/json").body("{}");
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    if path.ends_with("/events") && status == 200 {
        return Ok((status, String::new())); // an endless stream: the status is enough
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Ok((
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

c24_e2e::both! {
async fn the_test_table_matches_the_servers_route_table() {
    let server: BTreeSet<_> = c24_chatcore::http::guard::ADMIN_ROUTES
        .iter()
        .map(|r| (r.method, r.path, r.role.as_str(), r.mfa, r.tenant_key))
        .collect();
    let expected: BTreeSet<_> = EXPECTED.iter().copied().collect();
    assert_eq!(server, expected);
}
}

c24_e2e::both! {
async fn every_admin_route_checks_token_role_and_second_factor() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (tokens_file, staff) = write_tokens_file(dir.path())?;
    let core = Core::start_with(|c| {
        *c = c.clone().with_dev_clock();
        c.tokens_file = Some(tokens_file);
    })
    .await?;
    let t = core.tenant("Walk", true).await?;
    let roles = [
        ("viewer", staff.viewer.token.as_str()),
        ("operator", staff.operator.token.as_str()),
        ("admin", staff.admin.token.as_str()),
    ];
    for &(method, template, least, mfa, tenant_ok) in EXPECTED {
        let path = template
            .replace("{id}", &t.id)
            .replace("{dsr_id}", "x")
            .replace("{consent_id}", "x");
        let what = format!("{method} {template}");
        assert_eq!(
            call(&core, method, &path, None, None).await?,
            (401, "unauthorized".into()),
            "{what} without a token"
        );
        assert_eq!(
            call(&core, method, &path, Some("not-a-token"), None).await?,
            (401, "unauthorized".into()),
            "{what} with a bad token"
        );
        let (status, code) = call(&core, method, &path, Some(&t.api_key), None).await?;
        if tenant_ok {
            assert!(
                status != 401 && status != 403,
                "{what} with a tenant key: {status} {code}"
            );
        } else {
            assert_eq!(
                (status, code.as_str()),
                (403, "forbidden"),
                "{what} with a tenant key"
            );
        }
        for (role, token) in roles {
            let (status, code) = call(&core, method, &path, Some(token), None).await?;
            if rank(role) < rank(least) {
                assert_eq!(
                    (status, code.as_str()),
                    (403, "forbidden"),
                    "{what} as {role}"
                );
            } else if mfa {
                assert_eq!(
                    (status, code.as_str()),
                    (401, "mfa_required"),
                    "{what} as {role}"
                );
                let (status, code) =
                    call(&core, method, &path, Some(token), Some("000000")).await?;
                assert_eq!(
                    (status, code.as_str()),
                    (401, "mfa_invalid"),
                    "{what} as {role}"
                );
            } else {
                assert!(
                    status != 401 && status != 403,
                    "{what} as {role}: {status} {code}"
                );
            }
        }
        if mfa {
            let (status, code) = call(
                &core,
                method,
                &path,
                Some(&staff.admin_no_totp.token),
                Some("123456"),
            )
            .await?;
            assert_eq!((status, code.as_str()), (401, "mfa_not_enrolled"), "{what}");
        }
    }

    // The refused writes are in the audit log, newest first, with their outcome.
    let audit: Value = core
        .http
        .get(format!("{}/admin/v1/audit?limit=1000", core.url()))
        .bearer_auth(&staff.viewer.token)
        .send()
        .await?
        .json()
        .await?;
    let items = audit["items"].as_array().cloned().unwrap_or_default();
    let outcomes: BTreeSet<_> = items
        .iter()
        .filter_map(|i| i["outcome"].as_str().map(str::to_string))
        .collect();
    for o in [
        "unauthorized",
        "forbidden",
        "mfa_required",
        "mfa_invalid",
        "mfa_not_enrolled",
    ] {
        assert!(outcomes.contains(o), "no audit entry with outcome {o}");
    }
    let ids: Vec<i64> = items.iter().filter_map(|i| i["id"].as_i64()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "audit not newest first"
    );
    assert!(
        items
            .iter()
            .any(|i| i["actor"] == "vera" && i["outcome"] == "forbidden")
    );
    // Writes, and the one read audited like a write (a data-subject export).
    let audited_reads: BTreeSet<&str> = c24_chatcore::http::guard::ADMIN_ROUTES
        .iter()
        .filter(|r| r.audit_read)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        audited_reads,
        BTreeSet::from([
            "/admin/v1/tenants/{id}/dsr/{dsr_id}/export",
            "/admin/v1/traffic/trace"
        ])
    );
    assert!(items.iter().all(|i| i["action"].as_str().is_some_and(|a| {
        a.starts_with("POST ")
            || a.strip_prefix("GET ")
                .is_some_and(|p| audited_reads.contains(p))
    })));
    assert!(
        items.iter().any(
            |i| i["action"] == "GET /admin/v1/tenants/{id}/dsr/{dsr_id}/export"
                && i["outcome"] == "dsr_not_found"
        ),
        "the export download is audited"
    );
    Ok(())
}
}

c24_e2e::both! {
async fn a_valid_second_factor_is_accepted_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (tokens_file, staff) = write_tokens_file(dir.path())?;
    let core = Core::start_with(|c| c.tokens_file = Some(tokens_file)).await?;
    let secret = staff.operator.totp_secret.clone().unwrap_or_default();
    let mut codes = TotpCodes::new(&secret)?;
    let code = codes.code()?;
    let path = "/admin/v1/retention/purge";
    let op = Some(staff.operator.token.as_str());
    assert_eq!(call(&core, "POST", path, op, Some(&code)).await?.0, 200);
    // The same code again: refused (replay).
    assert_eq!(
        call(&core, "POST", path, op, Some(&code)).await?,
        (401, "mfa_invalid".into())
    );
    assert_eq!(
        call(&core, "POST", path, op, Some(&codes.code()?)).await?.0,
        200
    );
    let audit: Value = core
        .http
        .get(format!("{}/admin/v1/audit", core.url()))
        .bearer_auth(&staff.viewer.token)
        .send()
        .await?
        .json()
        .await?;
    let first = &audit["items"][0];
    assert_eq!(first["actor"], "otto");
    assert_eq!(first["role"], "operator");
    assert_eq!(first["action"], "POST /admin/v1/retention/purge");
    assert_eq!(first["outcome"], "ok");
    assert_eq!(first["status"], 200);
    Ok(())
}
}

c24_e2e::both! {
async fn the_dev_clock_route_exists_only_with_the_flag() -> anyhow::Result<()> {
    let core = Core::start().await?;
    let token = core.running.admin_token().to_string();
    let (status, code) = call(&core, "POST", "/admin/v1/clock/advance", Some(&token), None).await?;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    Ok(())
}
}

c24_e2e::both! {
async fn a_tokens_file_with_a_plaintext_token_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tokens.toml");
    std::fs::write(
        &path,
        "[[token]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"my-secret-token\"\n",
    )?;
    let err = Core::start_with(|c| c.tokens_file = Some(path)).await.err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("sha256"), "{msg}");
    Ok(())
}
}
