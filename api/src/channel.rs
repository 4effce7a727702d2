//! The three ingress channels, as every part names them on the wire, in
//! files and in metrics: `webchat`, `whatsapp`, `email`.

use serde::{Deserialize, Serialize};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Webchat,
    Whatsapp,
    Email,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Webchat, Channel::Whatsapp, Channel::Email];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webchat => "webchat",
            Channel::Whatsapp => "whatsapp",
            Channel::Email => "email",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
