//! The OpenAPI document (`GET /admin/v1/openapi.json`) against the running
//! server:
//!
//! - every route the server has (the admin guard's table plus the list of
//!   other routes below) is documented with its methods, and every
//!   documented operation exists (no answer is the router's fallback);
//! - real requests provoke every documented status except 500 and 503
//!   (storage faults, shutdown); each answer's status must be documented
//!   for its operation, its content type must be the documented one, its
//!   JSON body must validate against the documented schema (JSON Schema
//!   2020-12, with undocumented properties refused), and an error's
//!   `error.code` must be one the response lists in `x-c24-error-codes`.

use std::cell::RefCell;
use std::collections::BTreeSet;

use c24_api::admin::tenants::TenantCreated;
use c24_chatcore::http::guard::ADMIN_ROUTES;
use c24_e2e::{Core, TOTP_SECRET, TotpCodes, WAIT, marker, whatsapp_text, write_tokens_file};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};

/// The routes outside the admin guard's table, as `http::router` registers them.
const OTHER_ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/admin/v1/openapi.json"),
    ("GET", "/v1/webchat/ws"),
    ("GET", "/v1/whatsapp/{tenant_id}/webhook"),
    ("POST", "/v1/whatsapp/{tenant_id}/webhook"),
    ("POST", "/v1/email/{tenant_id}/inbound"),
    ("GET", "/v1/conversations"),
    ("GET", "/v1/conversations/{id}/messages"),
    ("POST", "/v1/conversations/{id}/messages"),
];

/// Statuses no test can provoke on a healthy server.
const UNPROVOKABLE: &[&str] = &["500", "503"];

/// Extra admin tokens with a second factor: each gives two TOTP codes a
/// half minute, and the test makes about forty privileged writes.
const POOL_ADMINS: usize = 29;

/// One request, named by its documented path template.
struct Req {
    method: Method,
    template: &'static str,
    path: String,
    token: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl Req {
    fn new(method: Method, template: &'static str) -> Self {
        Self {
            method,
            template,
            path: template.to_string(),
            token: None,
            headers: Vec::new(),
            body: None,
        }
    }

    fn get(template: &'static str) -> Self {
        Self::new(Method::GET, template)
    }

    fn post(template: &'static str) -> Self {
        Self::new(Method::POST, template)
    }

    /// Fills the path's parameters (`{id}` or `{tenant_id}`, and any
    /// second one such as `{dsr_id}`) with one value.
    fn id(mut self, id: &str) -> Self {
        self.path = fill(self.template, id, id);
        self
    }

    /// Fills a path with a tenant (`{id}`) and one of its records (`{dsr_id}`, `{consent_id}`).
    fn ids(mut self, id: &str, sub: &str) -> Self {
        self.path = fill(self.template, id, sub);
        self
    }

    fn query(mut self, q: &str) -> Self {
        self.path = format!("{}?{q}", self.path);
        self
    }

    fn token(mut self, t: &str) -> Self {
        self.token = Some(t.to_string());
        self
    }

    fn totp(self, code: &str) -> Self {
        self.header("X-C24-TOTP", code)
    }

    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn json(self, v: Value) -> Self {
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        self.raw("application/json", bytes)
    }

    fn raw(mut self, content_type: &str, bytes: Vec<u8>) -> Self {
        self.body = Some((content_type.to_string(), bytes));
        self
    }
}

fn fill(template: &str, id: &str, sub: &str) -> String {
    template
        .replace("{id}", id)
        .replace("{tenant_id}", id)
        .replace("{dsr_id}", sub)
        .replace("{consent_id}", sub)
}

/// The served document, and which (method, template, status) were seen.
struct Spec {
    doc: Value,
    /// `components` with `unevaluatedProperties: false` on every object
    /// schema that is not a part of another's `allOf`.
    strict: Value,
    seen: RefCell<BTreeSet<(String, String, String)>>,
}

/// Names of the component schemas a `$ref` inside some `allOf` points to.
fn all_of_parts(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(parts)) = m.get("allOf") {
                for p in parts {
                    if let Some(r) = p.get("$ref").and_then(Value::as_str) {
                        out.insert(r.trim_start_matches("#/components/schemas/").to_string());
                    }
                }
            }
            m.values().for_each(|c| all_of_parts(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| all_of_parts(c, out)),
        _ => {}
    }
}

/// Every `$ref` in the document.
fn refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                out.insert(r.to_string());
            }
            m.values().for_each(|c| refs(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
        _ => {}
    }
}

impl Spec {
    fn new(doc: Value) -> anyhow::Result<Self> {
        let mut strict = doc["components"].clone();
        let mut parts = BTreeSet::new();
        all_of_parts(&strict, &mut parts);
        let schemas = strict["schemas"]
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("no components.schemas"))?;
        for (name, s) in schemas.iter_mut() {
            let composite = ["properties", "allOf", "oneOf"]
                .iter()
                .any(|k| s.get(k).is_some());
            if composite && !parts.contains(name) {
                s["unevaluatedProperties"] = Value::Bool(false);
            }
        }
        Ok(Self {
            doc,
            strict,
            seen: RefCell::default(),
        })
    }

    fn operation(&self, method: &Method, template: &str) -> anyhow::Result<&Value> {
        let op = &self.doc["paths"][template][method.as_str().to_lowercase()];
        anyhow::ensure!(op.is_object(), "{method} {template} is not documented");
        Ok(op)
    }

    /// Validates `instance` against `schema`, resolving component refs.
    fn validate(&self, schema: &Value, instance: &Value, what: &str) -> anyhow::Result<()> {
        let wrapper = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.strict,
            "allOf": [schema],
        });
        let validator = jsonschema::validator_for(&wrapper)
            .map_err(|e| anyhow::anyhow!("{what}: the documented schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{e} (at {})", e.instance_path()))
            .collect();
        anyhow::ensure!(
            errors.is_empty(),
            "{what}: the body does not match the documented schema {schema}:\n{}\nbody: {instance}",
            errors.join("\n")
        );
        Ok(())
    }

    fn component(&self, name: &str) -> Value {
        json!({ "$ref": format!("#/components/schemas/{name}") })
    }

    /// Checks one answer against the document; the JSON body (or, for SSE,
    /// the first event; Null for other non-JSON bodies).
    async fn check(
        &self,
        method: &Method,
        template: &str,
        resp: reqwest::Response,
    ) -> anyhow::Result<(u16, Value)> {
        let what = format!("{method} {template}");
        let op = self.operation(method, template)?;
        let status = resp.status().as_u16();
        let documented = &op["responses"][status.to_string()];
        anyhow::ensure!(
            documented.is_object(),
            "{what} answered {status}, which is not documented (documented: {:?})",
            op["responses"]
                .as_object()
                .map(|m| m.keys().collect::<Vec<_>>())
        );
        self.seen.borrow_mut().insert((
            method.to_string(),
            template.to_string(),
            status.to_string(),
        ));
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let Some(content) = documented["content"].as_object() else {
            return Ok((status, Value::Null));
        };
        let (media, entry) = content
            .iter()
            .find(|(m, _)| content_type.starts_with(m.as_str()))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "{what} {status}: Content-Type {content_type:?} is not documented ({:?})",
                    content.keys().collect::<Vec<_>>()
                )
            })?;
        if media == "text/event-stream" {
            let event = first_sse_data(resp).await?;
            self.validate(&self.component("Event"), &event, &format!("{what} event"))?;
            return Ok((status, event));
        }
        let bytes = resp.bytes().await?;
        if !(media == "application/json" || media.ends_with("+json")) {
            return Ok((status, Value::Null));
        }
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| anyhow::anyhow!("{what} {status}: the body is not JSON: {e}"))?;
        self.validate(&entry["schema"], &body, &format!("{what} {status}"))?;
        if status >= 400 {
            let code = body["error"]["code"].as_str().unwrap_or_default();
            let listed = documented["x-c24-error-codes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>())
                .unwrap_or_default();
            anyhow::ensure!(
                listed.contains(&code),
                "{what} {status}: error code {code:?} is not documented ({listed:?})"
            );
        }
        Ok((status, body))
    }

    /// Every documented (method, template, status) the test did not see.
    fn unseen(&self) -> Vec<String> {
        let seen = self.seen.borrow();
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                for status in op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|r| r.0)
                {
                    let key = (method.to_uppercase(), path.clone(), status.clone());
                    if !UNPROVOKABLE.contains(&status.as_str()) && !seen.contains(&key) {
                        out.push(format!("{} {} {}", key.0, key.1, key.2));
                    }
                }
            }
        }
        out
    }
}

/// The `data:` of the first event of an SSE stream, as JSON.
async fn first_sse_data(mut resp: reqwest::Response) -> anyhow::Result<Value> {
    let mut buf = String::new();
    loop {
        if let Some(line) = buf
            .split('\n')
            .find(|l| l.starts_with("data:"))
            .filter(|_| buf.contains("\n\n"))
        {
            return Ok(serde_json::from_str(
                line.trim_start_matches("data:").trim(),
            )?);
        }
        let chunk = tokio::time::timeout(WAIT, resp.chunk())
            .await
            .map_err(|_| anyhow::anyhow!("no event within {WAIT:?}"))??
            .ok_or_else(|| anyhow::anyhow!("the event stream ended"))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Privileged-write codes from a pool of admin tokens.
struct Pool {
    tokens: Vec<(String, TotpCodes)>,
    next: usize,
}

impl Pool {
    fn code(&mut self) -> anyhow::Result<(String, String)> {
        let i = self.next % self.tokens.len();
        self.next += 1;
        let (token, codes) = &mut self.tokens[i];
        Ok((token.clone(), codes.code()?))
    }
}

struct T {
    core: Core,
    spec: Spec,
    pool: RefCell<Pool>,
}

impl T {
    async fn send(&self, r: Req) -> anyhow::Result<(Method, &'static str, reqwest::Response)> {
        let mut b = self
            .core
            .http
            .request(r.method.clone(), format!("{}{}", self.core.url(), r.path))
            .timeout(WAIT);
        if let Some(t) = &r.token {
            b = b.bearer_auth(t);
        }
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        if let Some((ct, bytes)) = r.body {
            b = b.header("Content-Type", ct).body(bytes);
        }
        Ok((r.method, r.template, b.send().await?))
    }

    /// Sends, checks against the document, and asserts the status (and,
    /// for an error, the code).
    async fn expect(&self, r: Req, status: u16, code: &str) -> anyhow::Result<Value> {
        let what = format!("{} {}", r.method, r.path);
        let (method, template, resp) = self.send(r).await?;
        let (got, body) = self.spec.check(&method, template, resp).await?;
        let got_code = body["error"]["code"].as_str().unwrap_or_default();
        anyhow::ensure!(
            (got, got_code) == (status, code),
            "{what}: expected {status} {code:?}, got {got} {got_code:?}: {body}"
        );
        Ok(body)
    }

    /// [`T::expect`] for each case in turn, stopping at the first that fails.
    async fn expect_each(&self, cases: Vec<(Req, u16, &str)>) -> anyhow::Result<()> {
        for (r, status, code) in cases {
            self.expect(r, status, code).await?;
        }
        Ok(())
    }

    /// A privileged write, with a fresh code of a pool admin.
    async fn privileged(&self, r: Req, status: u16, code: &str) -> anyhow::Result<Value> {
        let (token, totp) = self.pool.borrow_mut().code()?;
        self.expect(r.token(&token).totp(&totp), status, code).await
    }

    fn now_ms(&self) -> i64 {
        self.core.running.clock().now_ms()
    }

    /// RFC 3339 at the core's clock plus `days`.
    fn in_days(&self, days: i64) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(self.now_ms() + days * 86_400_000)
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    }
}

fn email_raw(message_id: &str) -> Vec<u8> {
    format!(
        "From: Alice Example <alice@example.com>\r\nTo: support@example.net\r\n\
         Subject: Order\r\nMessage-ID: <{message_id}@example.com>\r\n\r\nWhere is my order?\r\n"
    )
    .into_bytes()
}

/// A code no TOTP window around now accepts.
fn wrong_code() -> anyhow::Result<String> {
    let totp = c24_chatcore::access::totp(TOTP_SECRET).map_err(anyhow::Error::msg)?;
    let now = c24_e2e::unix_now() as u64;
    let window: Vec<String> = (0..6).map(|i| totp.generate(now + i * 30 - 60)).collect();
    Ok(["000000", "111111", "222222", "333333"]
        .into_iter()
        .find(|c| !window.iter().any(|w| w == c))
        .unwrap_or("999999")
        .to_string())
}

async fn start() -> anyhow::Result<(T, c24_e2e::StaffTokens, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let (tokens_file, staff) = write_tokens_file(dir.path())?;
    let mut text = std::fs::read_to_string(&tokens_file)?;
    let mut pool = Vec::new();
    for i in 0..POOL_ADMINS {
        let token = format!("pool-admin-{i}");
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        text.push_str(&format!(
            "[[token]]\nname = \"pool{i}\"\nrole = \"admin\"\nsha256 = \"{}\"\ntotp_secret = \"{TOTP_SECRET}\"\n\n",
            hex::encode(hash.as_ref())
        ));
        pool.push((token, TotpCodes::new(TOTP_SECRET)?));
    }
    std::fs::write(&tokens_file, text)?;
    let core = Core::start_with(|c| {
        *c = c.clone().with_dev_clock();
        c.tokens_file = Some(tokens_file);
    })
    .await?;
    let doc: Value = core
        .http
        .get(format!("{}/admin/v1/openapi.json", core.url()))
        .timeout(WAIT)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let t = T {
        core,
        spec: Spec::new(doc)?,
        pool: RefCell::new(Pool {
            tokens: pool,
            next: 0,
        }),
    };
    Ok((t, staff, dir))
}

c24_e2e::both! {
async fn the_document_and_the_server_agree() -> anyhow::Result<()> {
    let (t, staff, _dir) = start().await?;
    let doc = &t.spec.doc;

    // --- The document itself.
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "c24 chat core");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut all_refs = BTreeSet::new();
    refs(doc, &mut all_refs);
    for r in &all_refs {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }

    // --- (a) The server's routes and the documented operations are the same set.
    let server: BTreeSet<(String, String)> = ADMIN_ROUTES
        .iter()
        .map(|r| (r.method, r.path))
        .chain(OTHER_ROUTES.iter().copied())
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in item.as_object().into_iter().flatten().map(|m| m.0) {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    assert_eq!(
        documented.difference(&server).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented, but not a route of the server"
    );
    assert_eq!(
        server.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "a route of the server, but not documented"
    );
    // Each documented operation exists: no answer is the router's fallback.
    for (method, path) in &documented {
        let method = Method::from_bytes(method.as_bytes())?;
        let url = format!("{}{}", t.core.url(), fill(path, "x", "x"));
        let resp = t
            .core
            .http
            .request(method.clone(), url)
            .timeout(WAIT)
            .send()
            .await?;
        let (status, body) = t.spec.check(&method, path, resp).await?;
        let fallback =
            status == 405 || (status == 404 && body["error"]["message"] == "no such route");
        assert!(
            !fallback,
            "{method} {path}: the router has no such route ({status} {body})"
        );
    }
    // The guard's table is in the document, role by role.
    for spec in ADMIN_ROUTES {
        let op = t
            .spec
            .operation(&Method::from_bytes(spec.method.as_bytes())?, spec.path)?;
        assert_eq!(op["x-c24-role"], spec.role.as_str(), "{}", spec.path);
        assert_eq!(op["x-c24-totp"], spec.mfa, "{}", spec.path);
        assert_eq!(op["x-c24-tenant-key"], spec.tenant_key, "{}", spec.path);
        assert_eq!(op["security"][0]["bearer"], json!([]), "{}", spec.path);
    }

    // --- (b) Every documented answer, provoked.
    let admin = t.core.running.admin_token().to_string();
    let a = t.core.tenant("Alpha", true).await?;
    let b = t.core.tenant("Bravo", true).await?;
    let nodpa = t.core.tenant("NoDpa", false).await?;
    guard_answers(&t, &staff, &a).await?;
    probes(&t).await?;
    let conversation = webchat(&t, &a, &nodpa).await?;
    whatsapp(&t, &a, &nodpa).await?;
    email(&t, &a, &nodpa).await?;
    agent(&t, &staff, &admin, &a, &b, &conversation).await?;
    let b_dsr = before_b_is_shredded(&t, &b).await?;
    tenants(&t, &staff, &admin, &a, &b).await?;
    dsr(&t, &staff, &admin, &a, &b, &b_dsr).await?;
    consents(&t, &staff, &admin, &a, &b).await?;
    incidents(&t, &staff, &a).await?;
    live(&t, &admin).await?;
    registry(&t, &staff, &admin, &a, &b).await?;
    clock(&t, &staff, &admin).await?;

    let unseen = t.spec.unseen();
    assert!(
        unseen.is_empty(),
        "documented but never provoked:\n{}",
        unseen.join("\n")
    );
    t.core.stop().await;
    Ok(())
}
}

/// The guard's answers on every admin route: no token, a tenant key, a
/// role too low, a missing / wrong / unenrolled second factor.
async fn guard_answers(
    t: &T,
    staff: &c24_e2e::StaffTokens,
    tenant: &TenantCreated,
) -> anyhow::Result<()> {
    let wrong = wrong_code()?;
    for spec in ADMIN_ROUTES {
        let method = Method::from_bytes(spec.method.as_bytes())?;
        let req = || {
            let r = Req::new(method.clone(), spec.path).id("x");
            if method == Method::POST {
                r.json(json!({}))
            } else {
                r
            }
        };
        t.expect_each(vec![
            (req(), 401, "unauthorized"),
            (req().token("not-a-token"), 401, "unauthorized"),
        ])
        .await?;
        if !spec.tenant_key {
            t.expect(req().token(&tenant.api_key), 403, "forbidden")
                .await?;
        }
        let below = match spec.role.as_str() {
            "operator" => Some(&staff.viewer),
            "admin" => Some(&staff.operator),
            _ => None,
        };
        if let Some(low) = below {
            t.expect(req().token(&low.token), 403, "forbidden").await?;
        }
        if spec.mfa {
            t.expect_each(vec![
                (req().token(&staff.admin.token), 401, "mfa_required"),
                (
                    req().token(&staff.admin.token).totp(&wrong),
                    401,
                    "mfa_invalid",
                ),
                (
                    req().token(&staff.admin_no_totp.token),
                    401,
                    "mfa_not_enrolled",
                ),
            ])
            .await?;
        }
    }
    Ok(())
}

async fn probes(t: &T) -> anyhow::Result<()> {
    let h = t.expect(Req::get("/healthz"), 200, "").await?;
    assert_eq!(h["status"], "ok");
    let r = t.expect(Req::get("/readyz"), 200, "").await?;
    assert_eq!(r["status"], "ready");
    t.expect_each(vec![
        (Req::get("/metrics"), 200, ""),
        (Req::get("/admin/v1/openapi.json"), 200, ""),
    ])
    .await?;
    Ok(())
}

/// The socket: refusals, the 101, and the frames against their schemas.
async fn webchat(t: &T, a: &TenantCreated, nodpa: &TenantCreated) -> anyhow::Result<String> {
    let ws = "/v1/webchat/ws";
    let key = &a.channels.webchat.widget_key;
    t.expect_each(vec![
        (Req::get(ws).query("visitor=v"), 401, "unauthorized"),
        (
            Req::get(ws).query("widget_key=nope&visitor=v"),
            401,
            "unauthorized",
        ),
        (
            Req::get(ws).query(&format!("widget_key={key}")),
            400,
            "invalid_visitor",
        ),
        (
            Req::get(ws).query(&format!("widget_key={key}&widget_key={key}&visitor=v")),
            400,
            "invalid_query",
        ),
        (
            Req::get(ws).query(&format!("widget_key={key}&visitor=v")),
            400,
            "websocket_required",
        ),
    ])
    .await?;
    let nk = &nodpa.channels.webchat.widget_key;
    t.expect(
        Req::get(ws).query(&format!("widget_key={nk}&visitor=v")),
        403,
        "dpa_required",
    )
    .await?;

    let url = format!("{}{ws}?widget_key={key}&visitor=visitor-1", t.core.ws_url());
    let (mut socket, resp) = tokio_tungstenite::connect_async(url).await?;
    let op = t.spec.operation(&Method::GET, ws)?;
    let status = resp.status().as_u16().to_string();
    assert!(
        op["responses"][&status].is_object(),
        "{status} is not documented for {ws}"
    );
    t.spec
        .seen
        .borrow_mut()
        .insert(("GET".into(), ws.into(), status));
    let frames = [
        json!({"type": "msg.send", "client_msg_id": "c1", "conversation_id": null, "content": "hello", "client_ts": 1}),
        json!({"type": "ping", "ts": 7}),
        json!({"type": "msg.send", "client_msg_id": "c2", "conversation_id": null, "content": ""}),
    ];
    let mut conversation = String::new();
    for (i, frame) in frames.iter().enumerate() {
        t.spec
            .validate(&t.spec.component("ClientFrame"), frame, "client frame")?;
        socket
            .send(tokio_tungstenite::tungstenite::Message::Text(
                frame.to_string().into(),
            ))
            .await?;
        let answer = loop {
            let msg = tokio::time::timeout(WAIT, socket.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("socket closed"))??;
            if let tokio_tungstenite::tungstenite::Message::Text(s) = msg {
                break serde_json::from_str::<Value>(s.as_str())?;
            }
        };
        t.spec
            .validate(&t.spec.component("ServerFrame"), &answer, "server frame")?;
        let expected = ["ack", "pong", "error"][i];
        assert_eq!(answer["type"], expected, "{answer}");
        if i == 0 {
            conversation = answer["conversation_id"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
    }
    socket.close(None).await?;
    anyhow::ensure!(!conversation.is_empty(), "no conversation from the ack");
    Ok(conversation)
}

async fn whatsapp(t: &T, a: &TenantCreated, nodpa: &TenantCreated) -> anyhow::Result<()> {
    let hook = "/v1/whatsapp/{tenant_id}/webhook";
    let verify = &a.channels.whatsapp.verify_token;
    let ok = format!("hub.mode=subscribe&hub.verify_token={verify}&hub.challenge=4711");
    t.expect(Req::get(hook).id(&a.id).query(&ok), 200, "")
        .await?;
    let (_, _, resp) = t.send(Req::get(hook).id(&a.id).query(&ok)).await?;
    assert_eq!(resp.text().await?, "4711");
    t.expect_each(vec![
        (
            Req::get(hook)
                .id(&a.id)
                .query(&format!("hub.mode=other&hub.verify_token={verify}")),
            400,
            "invalid_query",
        ),
        (
            Req::get(hook)
                .id(&a.id)
                .query("hub.mode=subscribe&hub.verify_token=wrong"),
            403,
            "invalid_verify_token",
        ),
        (
            Req::get(hook).id("nope").query(&ok),
            404,
            "tenant_not_found",
        ),
    ])
    .await?;

    let signed = |tenant: &TenantCreated, body: Vec<u8>| {
        let sig = c24_api::whatsapp::signature_header(&tenant.channels.whatsapp.app_secret, &body);
        Req::post(hook)
            .id(&tenant.id)
            .header(c24_api::whatsapp::SIGNATURE_HEADER, &sig)
            .raw("application/json", body)
    };
    let body = whatsapp_text(a, "4915112345678", "Bob", &marker("wamid"), "hi");
    let n: Value = serde_json::from_slice(&body)?;
    t.spec.validate(
        &t.spec.component("WhatsAppNotification"),
        &n,
        "notification",
    )?;
    let receipt = t.expect(signed(a, body.clone()), 200, "").await?;
    assert_eq!(receipt["stored"], 1);
    let receipt = t.expect(signed(a, body.clone()), 200, "").await?;
    assert_eq!(receipt["duplicates"], 1);
    t.expect_each(vec![
        (
            Req::post(hook)
                .id(&a.id)
                .header(c24_api::whatsapp::SIGNATURE_HEADER, "sha256=00")
                .raw("application/json", body.clone()),
            401,
            "invalid_signature",
        ),
        (signed(a, b"{}".to_vec()), 400, "invalid_payload"),
    ])
    .await?;
    let other = whatsapp_text(nodpa, "4915112345678", "Bob", &marker("wamid"), "hi");
    t.expect(signed(nodpa, other.clone()), 403, "dpa_required")
        .await?;
    // A's signature over a notification for another number.
    t.expect_each(vec![
        (signed(a, other), 403, "phone_number_mismatch"),
        (signed(a, body).id("nope"), 404, "tenant_not_found"),
        (
            signed(a, vec![b' '; c24_chatcore::http::whatsapp::BODY_LIMIT + 1]),
            413,
            "payload_too_large",
        ),
    ])
    .await?;
    Ok(())
}

async fn email(t: &T, a: &TenantCreated, nodpa: &TenantCreated) -> anyhow::Result<()> {
    let inbound = "/v1/email/{tenant_id}/inbound";
    let signed = |tenant: &TenantCreated, raw: &[u8], ts: i64, ct: &str| {
        let ts = ts.to_string();
        let sig = c24_api::email::signature_header(&tenant.channels.email.signing_key, &ts, raw);
        Req::post(inbound)
            .id(&tenant.id)
            .header(c24_api::email::TIMESTAMP_HEADER, &ts)
            .header(c24_api::email::SIGNATURE_HEADER, &sig)
            .raw(ct, raw.to_vec())
    };
    let rfc822 = c24_api::email::CONTENT_TYPE;
    let now = t.now_ms() / 1000;
    let raw = email_raw(&marker("mid"));
    let r = t.expect(signed(a, &raw, now, rfc822), 201, "").await?;
    assert_eq!(r["duplicate"], false);
    // Same Message-ID, a fresh signature: a duplicate.
    let r = t.expect(signed(a, &raw, now - 1, rfc822), 200, "").await?;
    assert_eq!(r["duplicate"], true);
    t.expect_each(vec![
        (signed(a, &raw, now, rfc822), 401, "signature_replayed"),
        (
            signed(a, &raw, now - 1000, rfc822),
            401,
            "signature_expired",
        ),
        (
            Req::post(inbound)
                .id(&a.id)
                .header(c24_api::email::TIMESTAMP_HEADER, &now.to_string())
                .header(c24_api::email::SIGNATURE_HEADER, "sha256=00")
                .raw(rfc822, raw.clone()),
            401,
            "invalid_signature",
        ),
        (
            signed(a, &email_raw(&marker("mid")), now + 1, "text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            signed(a, b"not a message", now + 2, rfc822),
            400,
            "invalid_email",
        ),
        (signed(nodpa, &raw, now, rfc822), 403, "dpa_required"),
        (
            signed(a, &raw, now + 3, rfc822).id("nope"),
            404,
            "tenant_not_found",
        ),
        (
            signed(
                a,
                &vec![b'x'; c24_api::email::MAX_MESSAGE_BYTES + 1],
                now,
                rfc822,
            ),
            413,
            "payload_too_large",
        ),
    ])
    .await?;
    Ok(())
}

async fn agent(
    t: &T,
    staff: &c24_e2e::StaffTokens,
    admin: &str,
    a: &TenantCreated,
    b: &TenantCreated,
    conversation: &str,
) -> anyhow::Result<()> {
    let list = "/v1/conversations";
    let msgs = "/v1/conversations/{id}/messages";
    let l = t.expect(Req::get(list).token(&a.api_key), 200, "").await?;
    assert!(l["items"].as_array().is_some_and(|i| !i.is_empty()), "{l}");
    t.expect_each(vec![
        (
            Req::get(list)
                .query(&format!("tenant={}", a.id))
                .token(admin),
            200,
            "",
        ),
        (Req::get(list), 401, "unauthorized"),
        (Req::get(list).token(admin), 400, "invalid_query"),
        (
            Req::get(list).query("limit=0").token(&a.api_key),
            400,
            "invalid_query",
        ),
        (
            Req::get(list)
                .query(&format!("tenant={}", b.id))
                .token(&a.api_key),
            403,
            "forbidden",
        ),
        (Req::get(list).token(&staff.viewer.token), 403, "forbidden"),
        (
            Req::get(list).query("tenant=nope").token(admin),
            404,
            "tenant_not_found",
        ),
    ])
    .await?;

    let m = t
        .expect(Req::get(msgs).id(conversation).token(&a.api_key), 200, "")
        .await?;
    assert_eq!(m["items"][0]["content"], "hello");
    t.expect_each(vec![
        (Req::get(msgs).id(conversation), 401, "unauthorized"),
        (
            Req::get(msgs)
                .id(conversation)
                .query("after=abc")
                .token(&a.api_key),
            400,
            "invalid_query",
        ),
        (
            Req::get(msgs).id(conversation).token(&staff.operator.token),
            403,
            "forbidden",
        ),
        (
            Req::get(msgs).id(conversation).token(&b.api_key),
            404,
            "conversation_not_found",
        ),
    ])
    .await?;

    let reply = |c: &str| Req::post(msgs).id(c);
    let v = t
        .expect(
            reply(conversation)
                .token(&a.api_key)
                .json(json!({"content": "hi back"})),
            201,
            "",
        )
        .await?;
    assert_eq!(v["direction"], "outbound");
    t.expect_each(vec![
        (
            reply(conversation).json(json!({"content": "x"})),
            401,
            "unauthorized",
        ),
        (
            reply(conversation)
                .token(&a.api_key)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            reply(conversation)
                .token(&a.api_key)
                .json(json!({"content": ""})),
            400,
            "invalid_content",
        ),
        (
            reply(conversation)
                .token(&staff.viewer.token)
                .json(json!({"content": "x"})),
            403,
            "forbidden",
        ),
        (
            reply("nope")
                .token(&a.api_key)
                .json(json!({"content": "x"})),
            404,
            "conversation_not_found",
        ),
        (
            reply(conversation)
                .token(&a.api_key)
                .json(json!({"content": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
    ])
    .await?;
    Ok(())
}

/// The tenant lifecycle, and a destroyed key's 410 on the agent API.
async fn tenants(
    t: &T,
    staff: &c24_e2e::StaffTokens,
    admin: &str,
    a: &TenantCreated,
    b: &TenantCreated,
) -> anyhow::Result<()> {
    let op = &staff.operator.token;
    let coll = "/admin/v1/tenants";
    let one = "/admin/v1/tenants/{id}";
    let created = t
        .expect(
            Req::post(coll).token(op).json(json!({"name": "Charlie"})),
            201,
            "",
        )
        .await?;
    let c = created["id"].as_str().unwrap_or_default().to_string();
    t.expect_each(vec![
        (
            Req::post(coll)
                .token(op)
                .raw("application/json", b"{\"name\":".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(coll)
                .token(op)
                .json(json!({"name": "x", "extra": 1})),
            400,
            "invalid_json",
        ),
        (
            Req::post(coll).token(op).json(json!({"name": " "})),
            400,
            "invalid_name",
        ),
        (
            Req::post(coll)
                .token(op)
                .json(json!({"name": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
    ])
    .await?;
    let page = t
        .expect(
            Req::get(coll)
                .query("sort=created_at&order=desc&limit=2")
                .token(&staff.viewer.token),
            200,
            "",
        )
        .await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2));
    t.expect_each(vec![
        (
            Req::get(coll).query("limit=0").token(admin),
            400,
            "invalid_query",
        ),
        (
            Req::get(coll).query("sort=colour").token(admin),
            400,
            "invalid_query",
        ),
        (Req::get(one).id(&a.id).token(&staff.viewer.token), 200, ""),
        (
            Req::get(one).id("nope").token(admin),
            404,
            "tenant_not_found",
        ),
    ])
    .await?;
    let convs = "/admin/v1/tenants/{id}/conversations";
    let page = t
        .expect(
            Req::get(convs)
                .id(&a.id)
                .query("limit=2")
                .token(&staff.viewer.token),
            200,
            "",
        )
        .await?;
    assert!(
        page["items"].as_array().is_some_and(|i| !i.is_empty()),
        "{page}"
    );
    t.expect_each(vec![
        (
            Req::get(convs).id(&a.id).query("limit=0").token(admin),
            400,
            "invalid_query",
        ),
        (
            Req::get(convs).id("nope").token(admin),
            404,
            "tenant_not_found",
        ),
    ])
    .await?;

    // Charlie: sign the DPA, suspend (its reply is refused), resume.
    let life = |what: &'static str, id: &str| Req::post(what).id(id).token(op);
    let s = t
        .expect(life("/admin/v1/tenants/{id}/sign-dpa", &c), 200, "")
        .await?;
    assert_eq!(s["dpa_signed"], true);
    let s = t
        .expect(life("/admin/v1/tenants/{id}/suspend", &c), 200, "")
        .await?;
    assert_eq!(s["status"], "suspended");
    let s = t
        .expect(life("/admin/v1/tenants/{id}/resume", &c), 200, "")
        .await?;
    assert_eq!(s["status"], "active");
    for what in [
        "/admin/v1/tenants/{id}/sign-dpa",
        "/admin/v1/tenants/{id}/suspend",
        "/admin/v1/tenants/{id}/resume",
    ] {
        t.expect(life(what, "nope"), 404, "tenant_not_found")
            .await?;
    }

    // Bravo: a conversation, then suspended (a reply is refused).
    let body = whatsapp_text(b, "4915199999999", "Dora", &marker("wamid"), "hello");
    let resp = t.core.whatsapp(b, &body, None).await?;
    assert_eq!(resp.status(), 200);
    let convs: Value = t
        .core
        .as_tenant(b)
        .conversations()
        .await
        .map(|l| json!(l))?;
    let bconv = convs["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    t.expect_each(vec![
        (life("/admin/v1/tenants/{id}/suspend", &b.id), 200, ""),
        (
            Req::post("/v1/conversations/{id}/messages")
                .id(&bconv)
                .token(&b.api_key)
                .json(json!({"content": "x"})),
            403,
            "tenant_suspended",
        ),
    ])
    .await?;

    // Bravo: terminated, its key destroyed; its messages are gone (410).
    let term = "/admin/v1/tenants/{id}/terminate";
    let destroy = "/admin/v1/tenants/{id}/destroy-key";
    t.privileged(Req::post(destroy).id(&b.id), 409, "invalid_state")
        .await?;
    let s = t.privileged(Req::post(term).id(&b.id), 200, "").await?;
    assert_eq!(s["status"], "terminated");
    t.privileged(Req::post(term).id(&b.id), 409, "invalid_state")
        .await?;
    t.privileged(Req::post(term).id("nope"), 404, "tenant_not_found")
        .await?;
    let s = t.privileged(Req::post(destroy).id(&b.id), 200, "").await?;
    assert!(s["key_destroyed_at"].is_string(), "{s}");
    t.privileged(Req::post(destroy).id("nope"), 404, "tenant_not_found")
        .await?;
    for what in [
        "/admin/v1/tenants/{id}/sign-dpa",
        "/admin/v1/tenants/{id}/suspend",
        "/admin/v1/tenants/{id}/resume",
    ] {
        t.expect(life(what, &b.id), 409, "invalid_state").await?;
    }
    t.expect(
        Req::get("/v1/conversations/{id}/messages")
            .id(&bconv)
            .token(admin),
        410,
        "key_destroyed",
    )
    .await?;
    Ok(())
}

async fn live(t: &T, admin: &str) -> anyhow::Result<()> {
    let tp = "/admin/v1/throughput";
    t.expect_each(vec![
        (Req::get(tp).token(admin), 200, ""),
        (Req::get(tp).query("window=5m").token(admin), 200, ""),
        (
            Req::get(tp).query("window=soon").token(admin),
            400,
            "invalid_query",
        ),
        (
            Req::get(tp).query("window=2d").token(admin),
            400,
            "invalid_query",
        ),
        (
            Req::get(tp).query("tenant=nope").token(admin),
            404,
            "tenant_not_found",
        ),
        (Req::get("/admin/v1/overview").token(admin), 200, ""),
    ])
    .await?;
    // The first event on the stream is validated against `Event`.
    let ev = t
        .expect(Req::get("/admin/v1/events").token(admin), 200, "")
        .await?;
    assert!(ev["kind"].is_string(), "{ev}");
    t.expect(Req::get("/admin/v1/retention").token(admin), 200, "")
        .await?;
    let run = t
        .privileged(Req::post("/admin/v1/retention/purge"), 200, "")
        .await?;
    assert_eq!(run["trigger"], "manual");
    let trace = "/admin/v1/traffic/trace";
    let range = format!(
        "from={}&to={}",
        t.in_days(-1).replace('+', "%2B"),
        t.in_days(1).replace('+', "%2B")
    );
    t.expect_each(vec![
        (Req::get(trace).query(&range).token(admin), 200, ""),
        (
            Req::get(trace).query("from=soon").token(admin),
            400,
            "invalid_query",
        ),
    ])
    .await?;
    let audit = "/admin/v1/audit";
    let page = t
        .expect(Req::get(audit).query("limit=5").token(admin), 200, "")
        .await?;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5));
    t.expect_each(vec![
        (
            Req::get(audit).query("limit=0").token(admin),
            400,
            "invalid_query",
        ),
        (
            Req::get(audit).query("before=x").token(admin),
            400,
            "invalid_query",
        ),
    ])
    .await?;
    Ok(())
}

async fn registry(
    t: &T,
    staff: &c24_e2e::StaffTokens,
    admin: &str,
    a: &TenantCreated,
    b: &TenantCreated,
) -> anyhow::Result<()> {
    let coll = "/admin/v1/subprocessors";
    let list = t
        .expect(Req::get(coll).token(&staff.viewer.token), 200, "")
        .await?;
    let seeded: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == "active")
        .filter_map(|e| e["id"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(
        seeded.len() >= 2,
        "the seeded registry has fewer than two entries"
    );

    let name = marker("Example Analytics");
    let announcement = |effective: String| {
        json!({
            "name": name,
            "category": "Monitoring & Logging",
            "purpose": "Error tracking",
            "location": "Germany",
            "safeguard": "DPA",
            "data_categories": ["IP addresses"],
            "effective_at": effective,
        })
    };
    let sp = t
        .privileged(Req::post(coll).json(announcement(t.in_days(31))), 201, "")
        .await?;
    assert_eq!(sp["status"], "proposed");
    let new_id = sp["id"].as_str().unwrap_or_default().to_string();
    t.privileged(
        Req::post(coll).json(announcement(t.in_days(31))),
        409,
        "conflict",
    )
    .await?;
    t.privileged(
        Req::post(coll).json(announcement(t.in_days(1))),
        422,
        "notice_period",
    )
    .await?;
    t.privileged(
        Req::post(coll).raw("application/json", b"[".to_vec()),
        400,
        "invalid_json",
    )
    .await?;
    t.privileged(
        Req::post(coll).json(json!({"name": "x".repeat(70_000)})),
        413,
        "payload_too_large",
    )
    .await?;

    let changes = "/admin/v1/subprocessors/{id}/changes";
    let change = json!({"purpose": "Hosting and backups", "effective_at": t.in_days(31)});
    let c = t
        .privileged(
            Req::post(changes).id(&seeded[0]).json(change.clone()),
            200,
            "",
        )
        .await?;
    assert!(c["pending_change"].is_object(), "{c}");
    t.privileged(
        Req::post(changes)
            .id(&seeded[0])
            .json(json!({"effective_at": t.in_days(31)})),
        422,
        "invalid_field",
    )
    .await?;
    t.privileged(
        Req::post(changes).id("nope").json(change.clone()),
        404,
        "not_found",
    )
    .await?;
    t.privileged(
        Req::post(changes)
            .id(&seeded[0])
            .raw("application/json", b"{".to_vec()),
        400,
        "invalid_json",
    )
    .await?;
    t.privileged(
        Req::post(changes)
            .id(&seeded[0])
            .json(json!({"purpose": "x".repeat(70_000)})),
        413,
        "payload_too_large",
    )
    .await?;

    let approve = "/admin/v1/subprocessors/{id}/approve";
    // Reviewed something announced at another instant: refused.
    t.privileged(
        Req::post(approve)
            .id(&new_id)
            .json(json!({"announced_at": "2000-01-01T00:00:00Z"})),
        409,
        "stale_approval",
    )
    .await?;
    t.privileged(
        Req::post(approve)
            .id(&new_id)
            .raw("application/json", b"{".to_vec()),
        400,
        "invalid_json",
    )
    .await?;
    t.privileged(
        Req::post(approve)
            .id(&new_id)
            .json(json!({"announced_at": "x".repeat(70_000)})),
        413,
        "payload_too_large",
    )
    .await?;
    let ap = t
        .privileged(Req::post(approve).id(&new_id), 200, "")
        .await?;
    assert_eq!(ap["approval"], "approved", "{ap}");
    t.privileged(Req::post(approve).id(&new_id), 409, "nothing_to_approve")
        .await?;
    t.privileged(Req::post(approve).id("nope"), 404, "not_found")
        .await?;

    let retire = "/admin/v1/subprocessors/{id}/retire";
    let r = t.privileged(Req::post(retire).id(&new_id), 200, "").await?;
    assert_eq!(r["status"], "retired");
    t.privileged(Req::post(retire).id(&new_id), 409, "conflict")
        .await?;
    t.privileged(Req::post(retire).id("nope"), 404, "not_found")
        .await?;
    t.privileged(Req::post(changes).id(&new_id).json(change), 409, "conflict")
        .await?;

    let object = "/admin/v1/subprocessors/{id}/objections";
    let objection =
        |tenant: &str| json!({"tenant_id": tenant, "reason": "We keep data in the EEA."});
    let o = t
        .expect(
            Req::post(object)
                .id(&seeded[1])
                .token(&a.api_key)
                .json(objection(&a.id)),
            201,
            "",
        )
        .await?;
    assert!(o["objection_count"].as_u64().is_some_and(|n| n >= 1), "{o}");
    t.expect_each(vec![
        (
            Req::post(object)
                .id(&seeded[1])
                .token(&staff.operator.token)
                .json(objection(&a.id)),
            201,
            "",
        ),
        (
            Req::post(object)
                .id(&seeded[1])
                .token(&a.api_key)
                .json(objection(&b.id)),
            403,
            "forbidden",
        ),
        (
            Req::post(object)
                .id(&seeded[1])
                .token(admin)
                .json(objection("nope")),
            404,
            "tenant_not_found",
        ),
        (
            Req::post(object)
                .id("nope")
                .token(admin)
                .json(objection(&a.id)),
            404,
            "not_found",
        ),
        (
            Req::post(object)
                .id(&new_id)
                .token(admin)
                .json(objection(&a.id)),
            409,
            "conflict",
        ),
        (
            Req::post(object)
                .id(&seeded[1])
                .token(admin)
                .json(json!({"tenant_id": a.id, "reason": "x".repeat(2_001)})),
            422,
            "invalid_field",
        ),
        (
            Req::post(object)
                .id(&seeded[1])
                .token(admin)
                .raw("application/json", b"{}".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(object)
                .id(&seeded[1])
                .token(admin)
                .json(json!({"tenant_id": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
    ])
    .await?;

    let feed = "/admin/v1/subprocessors/feed.json";
    let f = t.expect(Req::get(feed).token(&a.api_key), 200, "").await?;
    assert!(f["items"].as_array().is_some_and(|i| !i.is_empty()), "{f}");
    t.expect(Req::get(feed).token(&staff.viewer.token), 200, "")
        .await?;
    Ok(())
}

/// The dev clock, and its 404 on a core without `--dev-clock`.
async fn clock(t: &T, staff: &c24_e2e::StaffTokens, admin: &str) -> anyhow::Result<()> {
    let adv = "/admin/v1/clock/advance";
    let before = t.now_ms();
    let now = t
        .expect(
            Req::post(adv).token(admin).json(json!({"seconds": 60})),
            200,
            "",
        )
        .await?;
    assert!(
        now["now_ms"]
            .as_i64()
            .is_some_and(|ms| ms >= before + 60_000),
        "{now}"
    );
    t.expect_each(vec![
        (
            Req::post(adv).token(admin).json(json!({"seconds": 0})),
            400,
            "invalid_seconds",
        ),
        (
            Req::post(adv).token(admin).json(json!({"secs": 1})),
            400,
            "invalid_json",
        ),
        (
            Req::post(adv)
                .token(&staff.operator.token)
                .json(json!({"seconds": 1})),
            403,
            "forbidden",
        ),
        (
            Req::post(adv)
                .token(admin)
                .json(json!({"seconds": 1, "pad": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
    ])
    .await?;

    let plain = Core::start().await?;
    let resp = plain
        .http
        .post(format!("{}{adv}", plain.url()))
        .bearer_auth(plain.running.admin_token())
        .json(&json!({"seconds": 1}))
        .timeout(WAIT)
        .send()
        .await?;
    let (status, body) = t.spec.check(&Method::POST, adv, resp).await?;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    plain.stop().await;
    Ok(())
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_string()
}

/// A request and a consent of Bravo's, filed while its key exists (the
/// tenants section destroys it): completing the request then answers 410.
async fn before_b_is_shredded(t: &T, b: &TenantCreated) -> anyhow::Result<String> {
    let r = t
        .expect(
            Req::post("/admin/v1/tenants/{id}/dsr")
                .id(&b.id)
                .token(&b.api_key)
                .json(json!({"type": "erasure", "subject": {"phone": "4915199999999"}})),
            201,
            "",
        )
        .await?;
    t.expect(
        Req::post("/admin/v1/tenants/{id}/consents")
            .id(&b.id)
            .token(&b.api_key)
            .json(json!({
                "subject": {"phone": "4915199999999"},
                "purposes": ["service updates"],
                "collection_method": "WhatsApp opt-in",
                "policy_version": "1",
            })),
        201,
        "",
    )
    .await?;
    Ok(id_of(&r))
}

/// Data-subject requests: file, list, read, extend, complete (privileged), export.
async fn dsr(
    t: &T,
    staff: &c24_e2e::StaffTokens,
    admin: &str,
    a: &TenantCreated,
    b: &TenantCreated,
    b_dsr: &str,
) -> anyhow::Result<()> {
    let coll = "/admin/v1/tenants/{id}/dsr";
    let one = "/admin/v1/tenants/{id}/dsr/{dsr_id}";
    let extend = "/admin/v1/tenants/{id}/dsr/{dsr_id}/extend";
    let complete = "/admin/v1/tenants/{id}/dsr/{dsr_id}/complete";
    let export = "/admin/v1/tenants/{id}/dsr/{dsr_id}/export";
    let access_body = json!({"type": "access", "subject": {"visitor_id": "visitor-1"}});
    let access = t
        .expect(
            Req::post(coll)
                .id(&a.id)
                .token(&a.api_key)
                .json(access_body.clone()),
            201,
            "",
        )
        .await?;
    assert!(access["due_at"].is_string(), "{access}");
    let erasure = t
        .expect(
            Req::post(coll)
                .id(&a.id)
                .token(&staff.operator.token)
                .json(json!({"type": "erasure", "subject": {"email": "alice@example.com"}})),
            201,
            "",
        )
        .await?;
    // Told when received (the request's own millisecond timestamp).
    let received = erasure["received_at"].clone();
    let (access, erasure) = (id_of(&access), id_of(&erasure));
    t.expect_each(vec![
        (
            Req::post(coll)
                .id(&a.id)
                .token(admin)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(coll)
                .id(&b.id)
                .token(&a.api_key)
                .json(access_body.clone()),
            403,
            "forbidden",
        ),
        (
            Req::post(coll)
                .id("nope")
                .token(admin)
                .json(access_body.clone()),
            404,
            "tenant_not_found",
        ),
        (
            Req::post(coll)
                .id(&b.id)
                .token(admin)
                .json(access_body.clone()),
            410,
            "key_destroyed",
        ),
        (
            Req::post(coll)
                .id(&a.id)
                .token(admin)
                .json(json!({"type": "access", "subject": {"email": "x".repeat(70_000)}})),
            413,
            "payload_too_large",
        ),
        (
            Req::post(coll)
                .id(&a.id)
                .token(admin)
                .json(json!({"type": "access", "subject": {}})),
            422,
            "invalid_subject",
        ),
    ])
    .await?;

    let list = t
        .expect(Req::get(coll).id(&a.id).token(&a.api_key), 200, "")
        .await?;
    assert!(
        list["items"].as_array().is_some_and(|i| i.len() >= 2),
        "{list}"
    );
    t.expect_each(vec![
        (
            Req::get(coll).id(&a.id).query("limit=0").token(admin),
            400,
            "invalid_query",
        ),
        (Req::get(coll).id(&b.id).token(&a.api_key), 403, "forbidden"),
        (
            Req::get(coll).id("nope").token(admin),
            404,
            "tenant_not_found",
        ),
        (
            Req::get(one).ids(&a.id, &access).token(&staff.viewer.token),
            200,
            "",
        ),
        (
            Req::get(one).ids(&b.id, &access).token(&a.api_key),
            403,
            "forbidden",
        ),
        (
            Req::get(one).ids(&a.id, "nope").token(admin),
            404,
            "dsr_not_found",
        ),
    ])
    .await?;

    let told = json!({"months": 1, "reason": "complex", "person_informed_at": received});
    let v = t
        .expect(
            Req::post(extend)
                .ids(&a.id, &erasure)
                .token(&a.api_key)
                .json(told.clone()),
            200,
            "",
        )
        .await?;
    assert_eq!(v["status"], "extended");
    t.expect_each(vec![
        (
            Req::post(extend)
                .ids(&a.id, &erasure)
                .token(admin)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(extend)
                .ids(&b.id, &erasure)
                .token(&a.api_key)
                .json(told.clone()),
            403,
            "forbidden",
        ),
        (
            Req::post(extend)
                .ids(&a.id, "nope")
                .token(admin)
                .json(told.clone()),
            404,
            "dsr_not_found",
        ),
        (
            Req::post(extend)
                .ids(&a.id, &erasure)
                .token(admin)
                .json(json!({"months": 1, "reason": "x".repeat(70_000), "person_informed_at": ""})),
            413,
            "payload_too_large",
        ),
        (
            Req::post(extend)
                .ids(&a.id, &erasure)
                .token(admin)
                .json(json!({"months": 5, "reason": "x", "person_informed_at": t.in_days(0)})),
            422,
            "invalid_field",
        ),
    ])
    .await?;

    let done = t
        .privileged(
            Req::post(complete).ids(&a.id, &access).json(json!({})),
            200,
            "",
        )
        .await?;
    assert_eq!(done["export"]["state"], "ready", "{done}");
    t.privileged(
        Req::post(complete).ids(&a.id, &access).json(json!({})),
        409,
        "invalid_state",
    )
    .await?;
    t.privileged(
        Req::post(complete)
            .ids(&a.id, &erasure)
            .raw("application/json", b"{".to_vec()),
        400,
        "invalid_json",
    )
    .await?;
    t.privileged(
        Req::post(complete).ids(&a.id, "nope").json(json!({})),
        404,
        "dsr_not_found",
    )
    .await?;
    t.privileged(
        Req::post(complete).ids(&b.id, b_dsr).json(json!({})),
        410,
        "key_destroyed",
    )
    .await?;
    t.privileged(
        Req::post(complete)
            .ids(&a.id, &erasure)
            .json(json!({"value": "x".repeat(70_000)})),
        413,
        "payload_too_large",
    )
    .await?;
    t.privileged(
        Req::post(complete)
            .ids(&a.id, &erasure)
            .json(json!({"field": "name", "value": "x"})),
        422,
        "invalid_field",
    )
    .await?;
    let erased = t
        .privileged(
            Req::post(complete).ids(&a.id, &erasure).json(json!({})),
            200,
            "",
        )
        .await?;
    assert_eq!(erased["outcome"]["contacts"], 1, "{erased}");
    t.expect_each(vec![
        (
            Req::post(extend)
                .ids(&a.id, &erasure)
                .token(admin)
                .json(told),
            409,
            "invalid_state",
        ),
        (
            Req::get(export).ids(&a.id, &erasure).token(&a.api_key),
            409,
            "invalid_state",
        ),
        (
            Req::get(export).ids(&a.id, &access).token(admin),
            403,
            "forbidden",
        ),
        (
            Req::get(export).ids(&a.id, "nope").token(&a.api_key),
            404,
            "dsr_not_found",
        ),
    ])
    .await?;
    let doc = t
        .expect(
            Req::get(export).ids(&a.id, &access).token(&a.api_key),
            200,
            "",
        )
        .await?;
    assert_eq!(doc["contacts"][0]["identifier"], "visitor-1", "{doc}");
    t.expect(
        Req::get(export).ids(&a.id, &access).token(&a.api_key),
        410,
        "export_gone",
    )
    .await?;
    Ok(())
}

/// Consent records: record, withdraw, list with counts.
async fn consents(
    t: &T,
    staff: &c24_e2e::StaffTokens,
    admin: &str,
    a: &TenantCreated,
    b: &TenantCreated,
) -> anyhow::Result<()> {
    let coll = "/admin/v1/tenants/{id}/consents";
    let withdraw = "/admin/v1/tenants/{id}/consents/{consent_id}/withdraw";
    let given = json!({
        "subject": {"email": "carol@example.com"},
        "purposes": ["newsletter", "surveys"],
        "collection_method": "web form checkbox",
        "policy_version": "2025-01",
    });
    let c = t
        .expect(
            Req::post(coll)
                .id(&a.id)
                .token(&a.api_key)
                .json(given.clone()),
            201,
            "",
        )
        .await?;
    assert_eq!(c["status"], "given");
    let c = id_of(&c);
    t.expect_each(vec![
        (
            Req::post(coll)
                .id(&a.id)
                .token(admin)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(coll)
                .id(&b.id)
                .token(&a.api_key)
                .json(given.clone()),
            403,
            "forbidden",
        ),
        (
            Req::post(coll).id("nope").token(admin).json(given.clone()),
            404,
            "tenant_not_found",
        ),
        (
            Req::post(coll).id(&b.id).token(admin).json(given.clone()),
            410,
            "key_destroyed",
        ),
        (
            Req::post(coll)
                .id(&a.id)
                .token(admin)
                .json(json!({"subject": {"email": "x".repeat(70_000)}})),
            413,
            "payload_too_large",
        ),
        (
            Req::post(coll).id(&a.id).token(admin).json(json!({
                "subject": {"email": "carol@example.com"},
                "purposes": [],
                "collection_method": "web form",
                "policy_version": "1",
            })),
            422,
            "invalid_field",
        ),
    ])
    .await?;

    let surveys = json!({"purposes": ["surveys"]});
    let w = t
        .expect(
            Req::post(withdraw)
                .ids(&a.id, &c)
                .token(&a.api_key)
                .json(surveys.clone()),
            200,
            "",
        )
        .await?;
    assert_eq!(
        (w["status"].as_str(), w["purge_after"].is_null()),
        (Some("given"), true)
    );
    t.expect_each(vec![
        (
            Req::post(withdraw)
                .ids(&a.id, &c)
                .token(admin)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(withdraw)
                .ids(&b.id, &c)
                .token(&a.api_key)
                .json(json!({})),
            403,
            "forbidden",
        ),
        (
            Req::post(withdraw)
                .ids(&a.id, "nope")
                .token(admin)
                .json(json!({})),
            404,
            "consent_not_found",
        ),
        (
            Req::post(withdraw)
                .ids(&a.id, &c)
                .token(admin)
                .json(surveys),
            409,
            "invalid_state",
        ),
        (
            Req::post(withdraw)
                .ids(&a.id, &c)
                .token(admin)
                .json(json!({"purposes": ["x".repeat(70_000)]})),
            413,
            "payload_too_large",
        ),
        (
            Req::post(withdraw)
                .ids(&a.id, &c)
                .token(admin)
                .json(json!({"purposes": ["telemarketing"]})),
            422,
            "invalid_field",
        ),
    ])
    .await?;

    let list = t
        .expect(Req::get(coll).id(&a.id).token(&staff.viewer.token), 200, "")
        .await?;
    assert_eq!(
        (list["total"].clone(), list["withdrawals"].clone()),
        (json!(1), json!(1))
    );
    let mine = t
        .expect(
            Req::get(coll)
                .id(&a.id)
                .query("email=Carol@Example.com")
                .token(&a.api_key),
            200,
            "",
        )
        .await?;
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1));
    t.expect_each(vec![
        (
            Req::get(coll).id(&a.id).query("limit=0").token(admin),
            400,
            "invalid_query",
        ),
        (Req::get(coll).id(&b.id).token(&a.api_key), 403, "forbidden"),
        (
            Req::get(coll).id("nope").token(admin),
            404,
            "tenant_not_found",
        ),
        (
            Req::get(coll)
                .id(&b.id)
                .query("phone=4915199999999")
                .token(admin),
            410,
            "key_destroyed",
        ),
    ])
    .await?;
    Ok(())
}

/// Breach records and their notifications.
async fn incidents(t: &T, staff: &c24_e2e::StaffTokens, a: &TenantCreated) -> anyhow::Result<()> {
    let coll = "/admin/v1/incidents";
    let one = "/admin/v1/incidents/{id}";
    let notify = "/admin/v1/incidents/{id}/notifications";
    let op = &staff.operator.token;
    let breach = json!({
        "aware_at": null,
        "nature": "A laptop with an export was lost",
        "categories": ["message bodies", "email addresses"],
        "records": 120,
        "subjects": 40,
        "affected_tenants": [a.id],
        "consequences": "Messages may be read by a finder",
        "measures": "Remote wipe; keys rotated",
        "platform_is_controller": true,
        "high_risk": false,
    });
    let i = t
        .expect(Req::post(coll).token(op).json(breach.clone()), 201, "")
        .await?;
    assert_eq!(i["clocks"]["controllers"][0]["overdue"], false, "{i}");
    assert!(i["clocks"]["authority"].is_object(), "{i}");
    assert!(i["clocks"]["subjects"].is_null(), "{i}");
    let i = id_of(&i);
    t.expect_each(vec![
        (
            Req::post(coll)
                .token(op)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(coll)
                .token(op)
                .json(json!({"nature": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
    ])
    .await?;
    let mut unknown = breach.clone();
    unknown["affected_tenants"] = json!(["nope"]);
    t.expect(
        Req::post(coll).token(op).json(unknown),
        422,
        "unknown_tenant",
    )
    .await?;
    let list = t
        .expect(Req::get(coll).token(&staff.viewer.token), 200, "")
        .await?;
    assert_eq!(list["items"][0]["id"], i.as_str());
    t.expect_each(vec![
        (
            Req::get(coll).query("limit=0").token(op),
            400,
            "invalid_query",
        ),
        (Req::get(one).id(&i).token(&staff.viewer.token), 200, ""),
        (
            Req::get(one).id("nope").token(op),
            404,
            "incident_not_found",
        ),
    ])
    .await?;
    let to_a = json!({"to": "controller", "tenant_id": a.id});
    let v = t
        .expect(
            Req::post(notify).id(&i).token(op).json(to_a.clone()),
            201,
            "",
        )
        .await?;
    assert!(
        v["clocks"]["controllers"][0]["notified_at"].is_string(),
        "{v}"
    );
    t.expect_each(vec![
        (
            Req::post(notify).id(&i).token(op).json(to_a),
            409,
            "already_notified",
        ),
        (
            Req::post(notify)
                .id("nope")
                .token(op)
                .json(json!({"to": "authority"})),
            404,
            "incident_not_found",
        ),
        (
            Req::post(notify)
                .id(&i)
                .token(op)
                .raw("application/json", b"{".to_vec()),
            400,
            "invalid_json",
        ),
        (
            Req::post(notify)
                .id(&i)
                .token(op)
                .json(json!({"to": "authority", "pad": "x".repeat(70_000)})),
            413,
            "payload_too_large",
        ),
        (
            Req::post(notify)
                .id(&i)
                .token(op)
                .json(json!({"to": "subjects"})),
            422,
            "no_such_clock",
        ),
    ])
    .await?;
    Ok(())
}
