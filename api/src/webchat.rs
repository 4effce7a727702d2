//! Web-chat WebSocket frames (`GET /v1/webchat/ws?widget_key=KEY&visitor=ID`).
//!
//! JSON text frames tagged by `type`. Client frames reject unknown fields.

use serde::{Deserialize, Serialize};

/// Largest client frame the server accepts; larger ones get an error frame.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A frame sent by the visitor's widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    /// A visitor message. `conversation_id: null` starts a new conversation.
    #[serde(rename = "msg.send")]
    MsgSend {
        client_msg_id: String,
        conversation_id: Option<String>,
        content: String,
        #[serde(default)]
        client_ts: Option<i64>,
    },
    #[serde(rename = "ping")]
    Ping { ts: i64 },
    /// Re-attach to a conversation and receive every message after `last_seq`.
    #[serde(rename = "resume")]
    Resume {
        conversation_id: String,
        last_seq: i64,
    },
}

/// A frame sent by the chat core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// Sent only after the message is durably committed.
    #[serde(rename = "ack")]
    Ack(Ack),
    /// A pushed message (agent replies, and replays after `resume`).
    #[serde(rename = "msg.new")]
    MsgNew(MsgNew),
    #[serde(rename = "pong")]
    Pong { ts: i64 },
    #[serde(rename = "error")]
    Error {
        client_msg_id: Option<String>,
        code: String,
        message: String,
    },
}

/// Durable acknowledgement of a `msg.send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Ack {
    pub client_msg_id: String,
    pub message_id: String,
    pub conversation_id: String,
    pub seq: i64,
    /// Server clock (ms since the Unix epoch) when the frame was received.
    pub server_recv_ts: i64,
    /// Server clock (ms since the Unix epoch) when the commit holding it completed.
    pub server_commit_ts: i64,
}

/// A message pushed to the visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MsgNew {
    pub conversation_id: String,
    pub message_id: String,
    pub seq: i64,
    /// `inbound` (from the visitor) or `outbound` (from an agent).
    pub direction: String,
    pub content: String,
    /// Server clock, ms since the Unix epoch.
    pub created_ts: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_reject_unknown_fields() {
        let ok = r#"{"type":"msg.send","client_msg_id":"c1","conversation_id":null,"content":"hi","client_ts":1}"#;
        assert!(matches!(
            serde_json::from_str::<ClientFrame>(ok),
            Ok(ClientFrame::MsgSend { .. })
        ));
        let extra = r#"{"type":"msg.send","client_msg_id":"c1","conversation_id":null,"content":"hi","client_ts":1,"x":2}"#;
        assert!(serde_json::from_str::<ClientFrame>(extra).is_err());
        let ping_extra = r#"{"type":"ping","ts":1,"y":true}"#;
        assert!(serde_json::from_str::<ClientFrame>(ping_extra).is_err());
        let unknown_type = r#"{"type":"msg.delete","client_msg_id":"c1"}"#;
        assert!(serde_json::from_str::<ClientFrame>(unknown_type).is_err());
    }

    #[test]
    fn ack_has_the_documented_shape() {
        let frame = ServerFrame::Ack(Ack {
            client_msg_id: "c".into(),
            message_id: "m".into(),
            conversation_id: "v".into(),
            seq: 3,
            server_recv_ts: 10,
            server_commit_ts: 11,
        });
        let v = serde_json::to_value(&frame).unwrap();
        assert_eq!(v["type"], "ack");
        for key in [
            "client_msg_id",
            "message_id",
            "conversation_id",
            "seq",
            "server_recv_ts",
            "server_commit_ts",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }
}
