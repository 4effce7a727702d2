//! WhatsApp Cloud API webhook notification payloads, as Meta sends them.
//!
//! Only the fields the chat core uses are typed; everything else Meta sends
//! is accepted and ignored (no `deny_unknown_fields` here on purpose).

use serde::{Deserialize, Serialize};

/// Header carrying `sha256=<hex HMAC-SHA256(app_secret, raw body)>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// The `X-Hub-Signature-256` value for `body`: `sha256=<hex HMAC-SHA256(app_secret, body)>`.
pub fn signature_header(app_secret: &str, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, app_secret.as_bytes());
    format!("sha256={}", hex::encode(aws_lc_rs::hmac::sign(&key, body)))
}

/// Top-level notification: `{"object":"whatsapp_business_account","entry":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppNotification)]
pub struct Notification {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppEntry)]
pub struct Entry {
    /// WhatsApp Business Account id.
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppChange)]
pub struct Change {
    /// Usually `"messages"`.
    pub field: String,
    pub value: ChangeValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppChangeValue)]
pub struct ChangeValue {
    #[serde(default)]
    pub messaging_product: Option<String>,
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppMetadata)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: Option<String>,
    pub phone_number_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppContact)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    pub wa_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppProfile)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppMessage)]
pub struct Message {
    /// Meta's message id (`wamid.…`), the de-duplication key.
    pub id: String,
    /// Sender's WhatsApp id (their phone number).
    pub from: String,
    /// Unix seconds, as a string.
    pub timestamp: String,
    /// `text`, `image`, `audio`, `document`, `location`, …
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub context: Option<Context>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppText)]
pub struct Text {
    pub body: String,
}

/// Present when the message replies to an earlier one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppContext)]
pub struct Context {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
}

/// Delivery status of a message the business sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = WhatsAppStatus)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub recipient_id: Option<String>,
}

impl Notification {
    /// A one-text-message notification in Meta's shape, for tests and the load generator.
    pub fn text_message(
        phone_number_id: &str,
        from: &str,
        profile_name: &str,
        message_id: &str,
        timestamp_s: i64,
        body: &str,
    ) -> Self {
        Notification {
            object: "whatsapp_business_account".into(),
            entry: vec![Entry {
                id: "0".into(),
                changes: vec![Change {
                    field: "messages".into(),
                    value: ChangeValue {
                        messaging_product: Some("whatsapp".into()),
                        metadata: Metadata {
                            display_phone_number: None,
                            phone_number_id: phone_number_id.into(),
                        },
                        contacts: vec![Contact {
                            profile: Some(Profile {
                                name: Some(profile_name.into()),
                            }),
                            wa_id: from.into(),
                        }],
                        messages: vec![Message {
                            id: message_id.into(),
                            from: from.into(),
                            timestamp: timestamp_s.to_string(),
                            kind: "text".into(),
                            text: Some(Text { body: body.into() }),
                            context: None,
                        }],
                        statuses: vec![],
                    },
                }],
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_meta_payload_with_extra_fields() {
        let raw = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","text":{"body":"Does it come in another color?"},"type":"text","brand_new_field":1}]},"field":"messages"}]}]}"#;
        let n: Notification = serde_json::from_str(raw).unwrap();
        let m = &n.entry[0].changes[0].value.messages[0];
        assert_eq!(m.from, "16505551234");
        assert_eq!(
            m.text.as_ref().unwrap().body,
            "Does it come in another color?"
        );
    }
}
