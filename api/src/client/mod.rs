//! A typed async client over the chat core's HTTP APIs.
//!
//! The console and the load generator talk to the chat core only through this.
//! [`webchat`] (feature `ws`) is a visitor's WebSocket client.

#[cfg(feature = "ws")]
pub mod webchat;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ErrorBody;
use crate::admin::tenants::{CreateTenant, Tenant, TenantCreated, TenantList};
use crate::agent::{ConversationList, MessageList, MessageView, PostMessage};

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
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Self::decode(resp).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        Self::decode(resp).await
    }

    /// `POST /admin/v1/tenants`.
    pub async fn create_tenant(&self, req: &CreateTenant) -> Result<TenantCreated, ClientError> {
        self.post("/admin/v1/tenants", req).await
    }

    /// `GET /admin/v1/tenants`.
    pub async fn list_tenants(&self) -> Result<TenantList, ClientError> {
        self.get("/admin/v1/tenants").await
    }

    /// `GET /admin/v1/tenants/{id}`.
    pub async fn tenant(&self, id: &str) -> Result<Tenant, ClientError> {
        self.get(&format!("/admin/v1/tenants/{id}")).await
    }

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
