//! Encryption at rest: envelope encryption and blind indexes.
//!
//! - [`envelope`]: the key-encryption key (KEK), per-tenant data keys (DEK)
//!   wrapped by it, and AES-256-GCM sealing with AAD bound to
//!   tenant/table/row/column.
//! - [`blind_index`]: keyed HMAC lookups on encrypted identifiers.

pub mod blind_index;
pub mod envelope;

pub use blind_index::BlindKind;
pub use envelope::{Aad, CryptoError, Kek, TenantCipher};
