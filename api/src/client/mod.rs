//! A typed async client over the chat core's HTTP APIs.
//!
//! The console and the load generator talk to the chat core only through this.
//! [`webchat`] (feature `ws`) is a visitor's WebSocket client.

#[cfg(feature = "ws")]
pub mod webchat;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ErrorBody;
use crate::admin::audit::AuditPage;
use crate::admin::clock::{Advance, ClockNow};
use crate::admin::consents::{Consent, ConsentList, RecordConsent, WithdrawConsent};
use crate::admin::dsr::{CompleteDsr, CreateDsr, Dsr, DsrExport, DsrList, DsrSubject, ExtendDsr};
use crate::admin::events::Event;
use crate::admin::incidents::{CreateIncident, Incident, IncidentList, RecordNotification};
use crate::admin::overview::Overview;
use crate::admin::retention::{PurgeRun, RetentionReport};
use crate::admin::subprocessors::{
    Announcement, ChangeRequest, ObjectionRequest, RegistryList, SubProcessor,
};
use crate::admin::tenants::{
    CreateTenant, Tenant, TenantConversationList, TenantCreated, TenantList,
};
use crate::admin::throughput::Throughput;
use crate::admin::traffic::{TRACE_CONTENT_TYPE, TraceRecord};
use crate::agent::{ConversationList, MessageList, MessageView, PostMessage};

/// Header carrying the TOTP code of a privileged write.
pub const TOTP_HEADER: &str = "X-C24-TOTP";

/// An empty JSON object body.
#[derive(Serialize)]
struct Empty {}

/// Query of `GET /admin/v1/tenants`; every field optional.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TenantQuery {
    /// `active`, `suspended`, `terminated` or `purged`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Case-insensitive substring of name or id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpa: Option<bool>,
    /// `name`, `created_at`, `status`, `msgs_per_s`, `stored_messages`, `stored_bytes`, `open_conversations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    /// `asc` or `desc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// What can go wrong talking to the chat core.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with the JSON error body.
    #[error("{status}: {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// The server could not be reached, or answered something unreadable.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("bad base URL: {0}")]
    BadUrl(String),
    /// The WebSocket failed, or the handshake was refused with this HTTP status.
    #[error("websocket: {message}")]
    WebSocket {
        status: Option<u16>,
        code: Option<String>,
        message: String,
    },
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The event stream broke.
    #[error("event stream: {0}")]
    Stream(String),
}

impl ClientError {
    /// The API error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            ClientError::WebSocket { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

/// Client bound to one chat core and one bearer token (admin token or tenant api key).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// `base` is e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadUrl(base.to_string()));
        }
        let http = reqwest::Client::builder()
            .build()
            .map_err(ClientError::Transport)?;
        Ok(Self::with_http(http, base, token))
    }

    /// Use a prepared `reqwest::Client` (custom TLS roots, timeouts).
    pub fn with_http(http: reqwest::Client, base: &str, token: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            http: self.http.clone(),
            base: self.base.clone(),
            token: token.to_string(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json::<T>().await?);
        }
        let bytes = resp.bytes().await?;
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => Err(ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                code: "unexpected_response".into(),
                message: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
            }),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        Self::decode(req.bearer_auth(&self.token).send().await?).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A privileged write: `totp` goes in `X-C24-TOTP`.
    async fn post_mfa<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        totp: Option<&str>,
    ) -> Result<T, ClientError> {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(code) = totp {
            req = req.header(TOTP_HEADER, code);
        }
        self.send(req).await
    }

    /// A state change with no body (`{}`), privileged when `totp` is given.
    async fn post_action<T: DeserializeOwned>(
        &self,
        path: &str,
        totp: Option<&str>,
    ) -> Result<T, ClientError> {
        self.post_mfa(path, &Empty {}, totp).await
    }

    // --- probes and documents -------------------------------------------

    /// `GET /healthz`.
    pub async fn healthz(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/healthz").await
    }

    /// `GET /readyz`.
    pub async fn readyz(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/readyz").await
    }

    /// `GET /metrics` (Prometheus text).
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let resp = self.http.get(self.url("/metrics")).send().await?;
        if !resp.status().is_success() {
            return Self::decode::<String>(resp).await;
        }
        Ok(resp.text().await?)
    }

    /// `GET /admin/v1/openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/admin/v1/openapi.json").await
    }

    // --- tenants ------------------------------------------------------------

    /// `POST /admin/v1/tenants`.
    pub async fn create_tenant(&self, req: &CreateTenant) -> Result<TenantCreated, ClientError> {
        self.post("/admin/v1/tenants", req).await
    }

    /// `GET /admin/v1/tenants` (first page, default order).
    pub async fn list_tenants(&self) -> Result<TenantList, ClientError> {
        self.get("/admin/v1/tenants").await
    }

    /// `GET /admin/v1/tenants` with paging, sorting and filters.
    pub async fn query_tenants(&self, q: &TenantQuery) -> Result<TenantList, ClientError> {
        self.send(self.http.get(self.url("/admin/v1/tenants")).query(q))
            .await
    }

    /// Every tenant, following the cursors.
    pub async fn all_tenants(&self, q: &TenantQuery) -> Result<Vec<Tenant>, ClientError> {
        let mut q = q.clone();
        q.limit = Some(q.limit.unwrap_or(1000));
        let mut out = Vec::new();
        loop {
            let page = self.query_tenants(&q).await?;
            out.extend(page.items);
            match page.next {
                Some(n) => q.cursor = Some(n),
                None => return Ok(out),
            }
        }
    }

    /// `GET /admin/v1/tenants/{id}`.
    pub async fn tenant(&self, id: &str) -> Result<Tenant, ClientError> {
        self.get(&format!("/admin/v1/tenants/{id}")).await
    }

    /// `GET /admin/v1/tenants/{id}/conversations?limit=N`: the newest
    /// conversations' metadata (no content, no contact; viewer role).
    pub async fn tenant_conversations(
        &self,
        id: &str,
        limit: u32,
    ) -> Result<TenantConversationList, ClientError> {
        self.get(&format!(
            "/admin/v1/tenants/{id}/conversations?limit={limit}"
        ))
        .await
    }

    /// `POST /admin/v1/tenants/{id}/sign-dpa`.
    pub async fn sign_dpa(&self, id: &str) -> Result<Tenant, ClientError> {
        self.post_action(&format!("/admin/v1/tenants/{id}/sign-dpa"), None)
            .await
    }

    /// `POST /admin/v1/tenants/{id}/suspend`.
    pub async fn suspend(&self, id: &str) -> Result<Tenant, ClientError> {
        self.post_action(&format!("/admin/v1/tenants/{id}/suspend"), None)
            .await
    }

    /// `POST /admin/v1/tenants/{id}/resume`.
    pub async fn resume(&self, id: &str) -> Result<Tenant, ClientError> {
        self.post_action(&format!("/admin/v1/tenants/{id}/resume"), None)
            .await
    }

    /// `POST /admin/v1/tenants/{id}/terminate` (privileged: TOTP).
    pub async fn terminate(&self, id: &str, totp: &str) -> Result<Tenant, ClientError> {
        self.post_action(&format!("/admin/v1/tenants/{id}/terminate"), Some(totp))
            .await
    }

    /// `POST /admin/v1/tenants/{id}/destroy-key` (privileged: TOTP).
    pub async fn destroy_key(&self, id: &str, totp: &str) -> Result<Tenant, ClientError> {
        self.post_action(&format!("/admin/v1/tenants/{id}/destroy-key"), Some(totp))
            .await
    }

    // --- live figures ---------------------------------------------------------

    /// `GET /admin/v1/throughput?window=...[&tenant=...]`; `window` like `60s`.
    pub async fn throughput(
        &self,
        window: &str,
        tenant: Option<&str>,
    ) -> Result<Throughput, ClientError> {
        let mut q = vec![("window", window)];
        if let Some(t) = tenant {
            q.push(("tenant", t));
        }
        self.send(self.http.get(self.url("/admin/v1/throughput")).query(&q))
            .await
    }

    /// `GET /admin/v1/overview`.
    pub async fn overview(&self) -> Result<Overview, ClientError> {
        self.get("/admin/v1/overview").await
    }

    /// `GET /admin/v1/events`: the Server-Sent Events stream, parsed.
    pub async fn events(
        &self,
    ) -> Result<impl futures_core::Stream<Item = Result<Event, ClientError>> + use<>, ClientError>
    {
        use eventsource_stream::Eventsource;
        use futures_util::StreamExt;
        let resp = self
            .http
            .get(self.url("/admin/v1/events"))
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(Self::decode::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or(ClientError::Timeout("an error body")));
        }
        Ok(resp.bytes_stream().eventsource().map(|item| match item {
            Ok(ev) => serde_json::from_str::<Event>(&ev.data).or_else(|_| {
                // `lagged` carries only a count.
                Ok(Event {
                    kind: ev.event,
                    at: String::new(),
                    data: serde_json::from_str(&ev.data).unwrap_or(serde_json::Value::Null),
                })
            }),
            Err(e) => Err(ClientError::Stream(e.to_string())),
        }))
    }

    // --- traffic trace ------------------------------------------------------

    /// `GET /admin/v1/traffic/trace?from=&to=` (operator): the records of
    /// `[from, to)` (RFC 3339), ordered by time, read line by line as they
    /// stream in, so a long range is never held as one body.
    pub async fn traffic_trace_stream(
        &self,
        from: &str,
        to: &str,
    ) -> Result<
        futures_util::stream::BoxStream<'static, Result<TraceRecord, ClientError>>,
        ClientError,
    > {
        use futures_util::StreamExt;
        let resp = self
            .http
            .get(self.url("/admin/v1/traffic/trace"))
            .query(&[("from", from), ("to", to)])
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, TRACE_CONTENT_TYPE)
            .send()
            .await?;
        if !resp.status().is_success() {
            return Err(Self::decode::<serde_json::Value>(resp)
                .await
                .err()
                .unwrap_or(ClientError::Timeout("an error body")));
        }
        struct Lines<S> {
            body: S,
            buf: Vec<u8>,
            line: usize,
            ended: bool,
        }
        let state = Lines {
            body: resp.bytes_stream().boxed(),
            buf: Vec::new(),
            line: 0,
            ended: false,
        };
        Ok(futures_util::stream::unfold(state, |mut s| async move {
            loop {
                if let Some(nl) = s.buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = s.buf.drain(..=nl).collect();
                    s.line += 1;
                    let text = &line[..line.len() - 1];
                    if text.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    let item = serde_json::from_slice::<TraceRecord>(text)
                        .map_err(|e| ClientError::Stream(format!("trace line {}: {e}", s.line)));
                    return Some((item, s));
                }
                if s.ended {
                    if s.buf.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let rest = std::mem::take(&mut s.buf);
                    s.line += 1;
                    let item = serde_json::from_slice::<TraceRecord>(&rest)
                        .map_err(|e| ClientError::Stream(format!("trace line {}: {e}", s.line)));
                    return Some((item, s));
                }
                match s.body.next().await {
                    Some(Ok(chunk)) => s.buf.extend_from_slice(&chunk),
                    Some(Err(e)) => {
                        s.ended = true;
                        s.buf.clear();
                        return Some((Err(ClientError::Stream(e.to_string())), s));
                    }
                    None => s.ended = true,
                }
            }
        })
        .boxed())
    }

    /// [`Self::traffic_trace_stream`], collected.
    pub async fn traffic_trace(
        &self,
        from: &str,
        to: &str,
    ) -> Result<Vec<TraceRecord>, ClientError> {
        use futures_util::TryStreamExt;
        self.traffic_trace_stream(from, to)
            .await?
            .try_collect()
            .await
    }

    // --- retention ------------------------------------------------------------

    /// `GET /admin/v1/retention`.
    pub async fn retention(&self) -> Result<RetentionReport, ClientError> {
        self.get("/admin/v1/retention").await
    }

    /// `POST /admin/v1/retention/purge` (privileged: TOTP).
    pub async fn purge(&self, totp: &str) -> Result<PurgeRun, ClientError> {
        self.post_action("/admin/v1/retention/purge", Some(totp))
            .await
    }

    // --- sub-processor registry -------------------------------------------

    /// `GET /admin/v1/subprocessors`.
    pub async fn subprocessors(&self) -> Result<RegistryList, ClientError> {
        self.get("/admin/v1/subprocessors").await
    }

    /// `POST /admin/v1/subprocessors` (privileged: TOTP).
    pub async fn announce_subprocessor(
        &self,
        a: &Announcement,
        totp: &str,
    ) -> Result<SubProcessor, ClientError> {
        self.post_mfa("/admin/v1/subprocessors", a, Some(totp))
            .await
    }

    /// `POST /admin/v1/subprocessors/{id}/changes` (privileged: TOTP).
    pub async fn announce_change(
        &self,
        id: &str,
        c: &ChangeRequest,
        totp: &str,
    ) -> Result<SubProcessor, ClientError> {
        self.post_mfa(
            &format!("/admin/v1/subprocessors/{id}/changes"),
            c,
            Some(totp),
        )
        .await
    }

    /// `POST /admin/v1/subprocessors/{id}/approve` (privileged: TOTP): approves
    /// the entry's pending proposal and/or change.
    pub async fn approve_subprocessor(
        &self,
        id: &str,
        totp: &str,
    ) -> Result<SubProcessor, ClientError> {
        self.post_action(&format!("/admin/v1/subprocessors/{id}/approve"), Some(totp))
            .await
    }

    /// `POST /admin/v1/subprocessors/{id}/approve` of what the admin
    /// reviewed: refused with 409 `stale_approval` if the pending proposal or
    /// change was announced at another instant (replaced since).
    pub async fn approve_reviewed_subprocessor(
        &self,
        id: &str,
        announced_at: &str,
        totp: &str,
    ) -> Result<SubProcessor, ClientError> {
        let body = crate::admin::subprocessors::ApproveRequest {
            announced_at: Some(announced_at.to_string()),
        };
        self.post_mfa(
            &format!("/admin/v1/subprocessors/{id}/approve"),
            &body,
            Some(totp),
        )
        .await
    }

    /// `POST /admin/v1/subprocessors/{id}/retire` (privileged: TOTP).
    pub async fn retire_subprocessor(
        &self,
        id: &str,
        totp: &str,
    ) -> Result<SubProcessor, ClientError> {
        self.post_action(&format!("/admin/v1/subprocessors/{id}/retire"), Some(totp))
            .await
    }

    /// `POST /admin/v1/subprocessors/{id}/objections` (a tenant's key, or operator).
    pub async fn object(
        &self,
        id: &str,
        o: &ObjectionRequest,
    ) -> Result<SubProcessor, ClientError> {
        self.post(&format!("/admin/v1/subprocessors/{id}/objections"), o)
            .await
    }

    /// `GET /admin/v1/subprocessors/feed.json` (JSON Feed 1.1).
    pub async fn subprocessor_feed(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/admin/v1/subprocessors/feed.json").await
    }

    // --- data-subject requests ---------------------------------------------

    /// `POST /admin/v1/tenants/{id}/dsr` (the tenant's key, or operator).
    pub async fn file_dsr(&self, tenant_id: &str, req: &CreateDsr) -> Result<Dsr, ClientError> {
        self.post(&format!("/admin/v1/tenants/{tenant_id}/dsr"), req)
            .await
    }

    /// `GET /admin/v1/tenants/{id}/dsr` (first page, newest first).
    pub async fn list_dsr(&self, tenant_id: &str) -> Result<DsrList, ClientError> {
        self.get(&format!("/admin/v1/tenants/{tenant_id}/dsr"))
            .await
    }

    /// `GET /admin/v1/tenants/{id}/dsr/{dsr_id}`.
    pub async fn dsr(&self, tenant_id: &str, dsr_id: &str) -> Result<Dsr, ClientError> {
        self.get(&format!("/admin/v1/tenants/{tenant_id}/dsr/{dsr_id}"))
            .await
    }

    /// `POST /admin/v1/tenants/{id}/dsr/{dsr_id}/extend`.
    pub async fn extend_dsr(
        &self,
        tenant_id: &str,
        dsr_id: &str,
        req: &ExtendDsr,
    ) -> Result<Dsr, ClientError> {
        self.post(
            &format!("/admin/v1/tenants/{tenant_id}/dsr/{dsr_id}/extend"),
            req,
        )
        .await
    }

    /// `POST /admin/v1/tenants/{id}/dsr/{dsr_id}/complete` (operator, privileged: TOTP).
    pub async fn complete_dsr(
        &self,
        tenant_id: &str,
        dsr_id: &str,
        req: &CompleteDsr,
        totp: &str,
    ) -> Result<Dsr, ClientError> {
        self.post_mfa(
            &format!("/admin/v1/tenants/{tenant_id}/dsr/{dsr_id}/complete"),
            req,
            Some(totp),
        )
        .await
    }

    /// `GET /admin/v1/tenants/{id}/dsr/{dsr_id}/export`: once; the server
    /// deletes it on this download.
    pub async fn dsr_export(
        &self,
        tenant_id: &str,
        dsr_id: &str,
    ) -> Result<DsrExport, ClientError> {
        self.get(&format!(
            "/admin/v1/tenants/{tenant_id}/dsr/{dsr_id}/export"
        ))
        .await
    }

    // --- consent records ----------------------------------------------------

    /// `POST /admin/v1/tenants/{id}/consents` (the tenant's key, or operator).
    pub async fn record_consent(
        &self,
        tenant_id: &str,
        req: &RecordConsent,
    ) -> Result<Consent, ClientError> {
        self.post(&format!("/admin/v1/tenants/{tenant_id}/consents"), req)
            .await
    }

    /// `POST /admin/v1/tenants/{id}/consents/{consent_id}/withdraw`.
    pub async fn withdraw_consent(
        &self,
        tenant_id: &str,
        consent_id: &str,
        req: &WithdrawConsent,
    ) -> Result<Consent, ClientError> {
        self.post(
            &format!("/admin/v1/tenants/{tenant_id}/consents/{consent_id}/withdraw"),
            req,
        )
        .await
    }

    /// `GET /admin/v1/tenants/{id}/consents[?email=|phone=|visitor_id=]`
    /// (first page, newest first), with the counts.
    pub async fn consents(
        &self,
        tenant_id: &str,
        subject: Option<&DsrSubject>,
    ) -> Result<ConsentList, ClientError> {
        let req = self
            .http
            .get(self.url(&format!("/admin/v1/tenants/{tenant_id}/consents")));
        let req = match subject {
            Some(s) => req.query(s),
            None => req,
        };
        self.send(req).await
    }

    // --- personal-data breaches ---------------------------------------------

    /// `POST /admin/v1/incidents` (operator).
    pub async fn record_incident(&self, req: &CreateIncident) -> Result<Incident, ClientError> {
        self.post("/admin/v1/incidents", req).await
    }

    /// `GET /admin/v1/incidents` (first page, newest first).
    pub async fn incidents(&self) -> Result<IncidentList, ClientError> {
        self.get("/admin/v1/incidents").await
    }

    /// `GET /admin/v1/incidents/{id}`.
    pub async fn incident(&self, id: &str) -> Result<Incident, ClientError> {
        self.get(&format!("/admin/v1/incidents/{id}")).await
    }

    /// `POST /admin/v1/incidents/{id}/notifications`: records a notification sent now.
    pub async fn record_notification(
        &self,
        id: &str,
        req: &RecordNotification,
    ) -> Result<Incident, ClientError> {
        self.post(&format!("/admin/v1/incidents/{id}/notifications"), req)
            .await
    }

    // --- audit and clock --------------------------------------------------

    /// `GET /admin/v1/audit?limit=N[&before=ID]`, newest first.
    pub async fn audit(&self, limit: u32, before: Option<i64>) -> Result<AuditPage, ClientError> {
        let mut path = format!("/admin/v1/audit?limit={limit}");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        self.get(&path).await
    }

    /// `POST /admin/v1/clock/advance` (only on a core started with `--dev-clock`).
    pub async fn advance_clock(&self, seconds: i64) -> Result<ClockNow, ClientError> {
        self.post("/admin/v1/clock/advance", &Advance { seconds })
            .await
    }

    // --- agent API ----------------------------------------------------------

    /// `GET /v1/conversations` (with a tenant api key).
    pub async fn conversations(&self) -> Result<ConversationList, ClientError> {
        self.get("/v1/conversations").await
    }

    /// `GET /v1/conversations/{id}/messages?limit=N[&after=CURSOR]`.
    pub async fn messages(
        &self,
        conversation_id: &str,
        limit: u32,
        after: Option<&str>,
    ) -> Result<MessageList, ClientError> {
        let mut path = format!("/v1/conversations/{conversation_id}/messages?limit={limit}");
        if let Some(a) = after {
            path.push_str("&after=");
            path.push_str(a);
        }
        self.get(&path).await
    }

    /// `POST /v1/conversations/{id}/messages`: an agent reply.
    pub async fn post_message(
        &self,
        conversation_id: &str,
        content: &str,
    ) -> Result<MessageView, ClientError> {
        self.post(
            &format!("/v1/conversations/{conversation_id}/messages"),
            &PostMessage {
                content: content.to_string(),
            },
        )
        .await
    }
}
