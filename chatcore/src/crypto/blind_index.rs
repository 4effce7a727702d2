//! Keyed blind indexes: HMAC-SHA256 of a normalised identifier under a key
//! derived from the tenant's DEK. Equal identifiers give equal tokens, so
//! lookups work without storing plaintext; destroying the DEK makes the
//! tokens unlinkable too.

use aws_lc_rs::hmac;

/// What an index token is for; part of the MAC input so tokens of different
/// kinds never collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlindKind {
    VisitorId,
    Phone,
    Email,
    /// Web-chat `client_msg_id`, scoped by visitor.
    WebchatClientMsg,
    /// WhatsApp message id (`wamid.…`).
    WhatsAppMsg,
    /// RFC 5322 `Message-ID`.
    EmailMessageId,
}

impl BlindKind {
    fn label(self) -> &'static str {
        match self {
            BlindKind::VisitorId => "visitor",
            BlindKind::Phone => "phone",
            BlindKind::Email => "email",
            BlindKind::WebchatClientMsg => "webchat-msg",
            BlindKind::WhatsAppMsg => "whatsapp-msg",
            BlindKind::EmailMessageId => "email-msgid",
        }
    }

    /// Normalises so that trivially different spellings match.
    fn normalise(self, value: &str) -> String {
        match self {
            BlindKind::Email => value.trim().to_lowercase(),
            BlindKind::Phone => value.chars().filter(|c| c.is_ascii_digit()).collect(),
            BlindKind::EmailMessageId => value
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string(),
            _ => value.to_string(),
        }
    }
}

pub(crate) struct BlindIndexKey(hmac::Key);

impl BlindIndexKey {
    pub(crate) fn derive(dek: &[u8]) -> Self {
        let root = hmac::Key::new(hmac::HMAC_SHA256, dek);
        let sub = hmac::sign(&root, b"c24 blind index v1");
        Self(hmac::Key::new(hmac::HMAC_SHA256, sub.as_ref()))
    }

    pub(crate) fn index(&self, kind: BlindKind, value: &str) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(kind.label().as_bytes());
        ctx.update(&[0]);
        ctx.update(kind.normalise(value).as_bytes());
        ctx.sign().as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_and_kind_separated() {
        let k = BlindIndexKey::derive(&[7u8; 32]);
        assert_eq!(
            k.index(BlindKind::Email, "A@Example.org "),
            k.index(BlindKind::Email, "a@example.org")
        );
        assert_eq!(
            k.index(BlindKind::Phone, "+31 6 1234"),
            k.index(BlindKind::Phone, "3161234")
        );
        assert_ne!(
            k.index(BlindKind::VisitorId, "x"),
            k.index(BlindKind::Email, "x")
        );
        let other = BlindIndexKey::derive(&[8u8; 32]);
        assert_ne!(
            k.index(BlindKind::VisitorId, "x"),
            other.index(BlindKind::VisitorId, "x")
        );
    }
}
