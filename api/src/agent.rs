//! The agent API: tenants read their conversations and answer visitors.

use serde::{Deserialize, Serialize};

/// `POST /v1/conversations/{id}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub content: String,
}

/// One conversation in `GET /v1/conversations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationSummary {
    pub id: String,
    pub tenant_id: String,
    /// `webchat`, `whatsapp` or `email`.
    pub channel: String,
    pub message_count: i64,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub last_activity_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationList {
    pub items: Vec<ConversationSummary>,
    /// Cursor for the next page, if any.
    pub next: Option<String>,
}

/// One message, decrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub seq: i64,
    /// `inbound` or `outbound`.
    pub direction: String,
    pub content: String,
    /// Email subject, when the channel has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// RFC 3339.
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageView>,
    /// Pass as `?after=` to read the next page; `null` at the end.
    pub next: Option<String>,
}
