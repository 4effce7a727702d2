//! Envelope encryption: KEK → wrapped per-tenant DEK → sealed fields.
//!
//! A sealed value is `nonce (12) || ciphertext || tag (16)`. The AAD names
//! tenant, table, row and column, so a ciphertext copied to another row or
//! tenant fails to open instead of leaking.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad as LcAad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::blind_index::{BlindIndexKey, BlindKind};

pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("KEK must be 32 bytes, base64-encoded ({0})")]
    BadKek(String),
    #[error("reading KEK file {path}: {source}")]
    KekFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a ciphertext failed to authenticate")]
    Open,
    #[error("encryption failed")]
    Seal,
    #[error("random number generator failed")]
    Rng,
}

/// What a sealed value is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Aad<'a> {
    pub tenant: &'a str,
    pub table: &'a str,
    pub row: &'a str,
    pub column: &'a str,
}

impl Aad<'_> {
    fn bytes(&self) -> Vec<u8> {
        // Unit separator between parts: none of them may contain it.
        let mut v = Vec::with_capacity(
            self.tenant.len() + self.table.len() + self.row.len() + self.column.len() + 8,
        );
        for (i, part) in [self.tenant, self.table, self.row, self.column]
            .iter()
            .enumerate()
        {
            if i > 0 {
                v.push(0x1f);
            }
            v.extend_from_slice(part.as_bytes());
        }
        v
    }
}

fn random_key() -> Result<[u8; KEY_LEN], CryptoError> {
    let mut k = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| CryptoError::Rng)?;
    Ok(k)
}

/// Random bytes, for tokens and ids.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut k = [0u8; N];
    SystemRandom::new()
        .fill(&mut k)
        .map_err(|_| CryptoError::Rng)?;
    Ok(k)
}

fn seal_with(
    key: &RandomizedNonceKey,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    buf.extend_from_slice(&[0u8; NONCE_LEN]);
    buf.extend_from_slice(plaintext);
    let mut body = buf.split_off(NONCE_LEN);
    let nonce = key
        .seal_in_place_append_tag(LcAad::from(aad), &mut body)
        .map_err(|_| CryptoError::Seal)?;
    buf.copy_from_slice(nonce.as_ref());
    buf.extend_from_slice(&body);
    Ok(buf)
}

fn open_with(key: &RandomizedNonceKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(CryptoError::Open);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Open)?;
    let mut body = body.to_vec();
    let plain = key
        .open_in_place(nonce, LcAad::from(aad), &mut body)
        .map_err(|_| CryptoError::Open)?;
    let n = plain.len();
    body.truncate(n);
    Ok(body)
}

/// The key-encryption key: wraps tenant DEKs and platform secrets.
pub struct Kek {
    key: RandomizedNonceKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    /// From base64 text (file contents or `C24_KEK`).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let raw = B64
            .decode(text.trim())
            .map_err(|e| CryptoError::BadKek(e.to_string()))?;
        if raw.len() != KEY_LEN {
            return Err(CryptoError::BadKek(format!("got {} bytes", raw.len())));
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, &raw).map_err(|_| CryptoError::Seal)?;
        Ok(Self { key })
    }

    pub fn from_file(path: &Path) -> Result<Self, CryptoError> {
        let text = std::fs::read_to_string(path).map_err(|source| CryptoError::KekFile {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_base64(&text)
    }

    /// A fresh random KEK and its base64 form.
    pub fn generate() -> Result<(Self, String), CryptoError> {
        let raw = random_key()?;
        let text = B64.encode(raw);
        Ok((Self::from_base64(&text)?, text))
    }

    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal_with(&self.key, &aad.bytes(), plaintext)
    }

    pub fn open(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.key, &aad.bytes(), sealed)
    }

    fn dek_aad(tenant: &str) -> Aad<'_> {
        Aad {
            tenant,
            table: "tenant_keys",
            row: tenant,
            column: "wrapped_dek",
        }
    }

    /// A new DEK for `tenant`: the cipher and its wrapped form to store.
    pub fn new_tenant_key(
        &self,
        tenant: &str,
        at_rest_encryption: bool,
    ) -> Result<(TenantCipher, Vec<u8>), CryptoError> {
        let dek = random_key()?;
        let wrapped = self.seal(Self::dek_aad(tenant), &dek)?;
        Ok((TenantCipher::new(&dek, at_rest_encryption)?, wrapped))
    }

    /// Unwraps a stored DEK.
    pub fn open_tenant_key(
        &self,
        tenant: &str,
        wrapped: &[u8],
        at_rest_encryption: bool,
    ) -> Result<TenantCipher, CryptoError> {
        let dek = self.open(Self::dek_aad(tenant), wrapped)?;
        TenantCipher::new(&dek, at_rest_encryption)
    }
}

/// One tenant's data key: seals its fields and computes its blind indexes.
pub struct TenantCipher {
    aead: RandomizedNonceKey,
    blind: BlindIndexKey,
    /// `false` only under `--no-at-rest-encryption` (overhead measurement).
    encrypt: bool,
}

impl fmt::Debug for TenantCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantCipher(encrypt={})", self.encrypt)
    }
}

impl TenantCipher {
    fn new(dek: &[u8], encrypt: bool) -> Result<Self, CryptoError> {
        Ok(Self {
            aead: RandomizedNonceKey::new(&AES_256_GCM, dek).map_err(|_| CryptoError::Seal)?,
            blind: BlindIndexKey::derive(dek),
            encrypt,
        })
    }

    /// Seals a field (or, with at-rest encryption off, stores it as is).
    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if !self.encrypt {
            return Ok(plaintext.to_vec());
        }
        seal_with(&self.aead, &aad.bytes(), plaintext)
    }

    pub fn open(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if !self.encrypt {
            return Ok(sealed.to_vec());
        }
        open_with(&self.aead, &aad.bytes(), sealed)
    }

    /// Opens a sealed UTF-8 string.
    pub fn open_string(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<String, CryptoError> {
        String::from_utf8(self.open(aad, sealed)?).map_err(|_| CryptoError::Open)
    }

    /// Keyed lookup token for an identifier; never the plaintext.
    pub fn blind_index(&self, kind: BlindKind, value: &str) -> Vec<u8> {
        self.blind.index(kind, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad<'a>(row: &'a str) -> Aad<'a> {
        Aad {
            tenant: "t1",
            table: "messages",
            row,
            column: "body",
        }
    }

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let (kek, _) = Kek::generate().unwrap();
        let (cipher, wrapped) = kek.new_tenant_key("t1", true).unwrap();
        let sealed = cipher.seal(aad("m1"), b"hello").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"hello"));
        assert_eq!(cipher.open(aad("m1"), &sealed).unwrap(), b"hello");
        // Moved to another row: refuses.
        assert!(cipher.open(aad("m2"), &sealed).is_err());
        // The wrapped DEK reopens to the same key.
        let again = kek.open_tenant_key("t1", &wrapped, true).unwrap();
        assert_eq!(again.open(aad("m1"), &sealed).unwrap(), b"hello");
        // Bound to its tenant.
        assert!(kek.open_tenant_key("t2", &wrapped, true).is_err());
        // Another KEK cannot unwrap it.
        let (other, _) = Kek::generate().unwrap();
        assert!(other.open_tenant_key("t1", &wrapped, true).is_err());
    }

    #[test]
    fn kek_rejects_wrong_length() {
        assert!(Kek::from_base64("aGVsbG8=").is_err());
        assert!(Kek::from_base64("not base64!").is_err());
    }
}
