//! Tenants: the platform's customers (GDPR controllers).

use serde::{Deserialize, Serialize};

/// `POST /admin/v1/tenants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    pub name: String,
    #[serde(default)]
    pub dpa_signed: bool,
}

/// A tenant as the admin API shows it (no secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub dpa_signed: bool,
    /// RFC 3339, when the DPA was signed.
    pub dpa_signed_at: Option<String>,
    /// `active`, `suspended`, `terminated` or `purged`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    pub channels: ChannelsPublic,
    /// RFC 3339, once terminated.
    #[serde(default)]
    pub terminated_at: Option<String>,
    /// RFC 3339: when the end-user data is due for deletion.
    #[serde(default)]
    pub purge_after: Option<String>,
    /// RFC 3339: when the data key was destroyed (crypto-shredding).
    #[serde(default)]
    pub key_destroyed_at: Option<String>,
    /// Messages per second over the last 10 s.
    #[serde(default)]
    pub msgs_per_s: f64,
    /// Messages in each of the last 60 complete seconds (all channels and
    /// directions), oldest first: the msgs/s sparkline of a tenants table.
    /// Empty when the tenant had no message in that minute, so an idle
    /// tenant costs nothing on the wire.
    #[serde(default)]
    pub msgs_per_sec_history: Vec<u32>,
    /// Conversations active in the last 24 h.
    #[serde(default)]
    pub open_conversations: i64,
    #[serde(default)]
    pub conversations: i64,
    #[serde(default)]
    pub stored_messages: i64,
    /// Plaintext bytes of stored message bodies.
    #[serde(default)]
    pub stored_bytes: i64,
    /// `retained`, `purge_scheduled`, `overdue` or `purged`.
    #[serde(default)]
    pub retention_state: String,
}

/// Public channel identifiers (what a tenant configures, never a secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelsPublic {
    pub webchat: bool,
    pub whatsapp: WhatsAppPublic,
    pub email: EmailPublic,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhatsAppPublic {
    pub phone_number_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailPublic {
    pub address: String,
}

/// `GET /admin/v1/tenants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantList {
    pub items: Vec<Tenant>,
    /// Cursor for the next page (`?cursor=`), `null` on the last.
    pub next: Option<String>,
    /// Tenants matching the filter, over all pages.
    #[serde(default)]
    pub total: Option<usize>,
}

/// One of a tenant's conversations as staff see it
/// (`GET /admin/v1/tenants/{id}/conversations`): metadata only, never
/// content or the end user's identifiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantConversation {
    pub id: String,
    /// `webchat`, `whatsapp` or `email`.
    pub channel: String,
    /// `open` (a message in the last 24 h, as `open_conversations` counts)
    /// or `idle`.
    pub status: String,
    pub message_count: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_activity_at: String,
}

/// `GET /admin/v1/tenants/{id}/conversations`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantConversationList {
    pub items: Vec<TenantConversation>,
    /// Pass as `?after=` for the next page; `null` on the last.
    pub next: Option<String>,
}

/// 201 answer to `POST /admin/v1/tenants`: the tenant with its credentials.
/// Shown once; the chat core keeps only what it needs to verify them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantCreated {
    pub id: String,
    pub name: String,
    pub dpa_signed: bool,
    pub api_key: String,
    pub channels: ChannelCredentials,
    pub status: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChannelCredentials {
    pub webchat: WebchatCredentials,
    pub whatsapp: WhatsAppCredentials,
    pub email: EmailCredentials,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebchatCredentials {
    pub widget_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WhatsAppCredentials {
    pub phone_number_id: String,
    pub app_secret: String,
    pub verify_token: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailCredentials {
    pub address: String,
    pub signing_key: String,
}
