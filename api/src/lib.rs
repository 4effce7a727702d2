//! The c24 contract: every type that crosses a process boundary.
//!
//! The chat core serialises these, the console and the load generator
//! deserialise them, so a change here is a change to the wire. Our own frames
//! reject unknown fields (a typo is an error, not silently ignored); Meta's
//! payloads accept them (Meta adds fields without notice).
//!
//! - [`channel`]: the three channel names.
//! - [`error`]: the JSON error body every HTTP error carries.
//! - [`webchat`]: web-chat WebSocket frames, client and server.
//! - [`whatsapp`]: WhatsApp Cloud API webhook notification payloads.
//! - [`email`]: header names and signing rule of the inbound-email channel.
//! - [`agent`]: the agent API (conversations and messages).
//! - [`admin`]: admin API types.
//! - [`units`]: durations (`500ms`, `60s`, `31d`) and sizes (`64KiB`) as written on command lines and in files.
//! - [`client`]: a typed async client over the admin and agent APIs, and
//!   (feature `ws`) a web-chat visitor client.

pub mod admin;
pub mod agent;
pub mod channel;
pub mod client;
pub mod email;
pub mod error;
pub mod units;
pub mod webchat;
pub mod whatsapp;

pub use channel::Channel;
pub use error::{ErrorBody, ErrorDetail};
