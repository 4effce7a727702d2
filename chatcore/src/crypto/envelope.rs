//! Envelope encryption: KEK → wrapped per-tenant DEK → sealed fields.
//!
//! A sealed value is `nonce (12) || ciphertext || tag (16)`. The AAD names
//! tenant, table, row and column, so a ciphertext copied to another row or
//! tenant fails to open instead of leaking.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{
    AES_256_GCM as ALG, Aad as LcAad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
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

/// Random nonces drawn from the system CSPRNG in bulk: one RNG call per
/// ~340 seals instead of one each (that call was two thirds of a seal's
/// cost). Each 12-byte slice of a batch is handed out once, then the batch is
/// refilled; a nonce is as random as `RandomizedNonceKey`'s, only fetched
/// ahead.
struct NoncePool {
    buf: [u8; NONCE_LEN * 341],
    next: usize,
}

thread_local! {
    static NONCES: std::cell::RefCell<NoncePool> = const {
        std::cell::RefCell::new(NoncePool {
            buf: [0; NONCE_LEN * 341],
            next: NONCE_LEN * 341,
        })
    };
}

fn random_nonce() -> Result<[u8; NONCE_LEN], CryptoError> {
    NONCES.with(|pool| {
        let mut p = pool.borrow_mut();
        if p.next + NONCE_LEN > p.buf.len() {
            SystemRandom::new()
                .fill(&mut p.buf)
                .map_err(|_| CryptoError::Rng)?;
            p.next = 0;
        }
        let at = p.next;
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(&p.buf[at..at + NONCE_LEN]);
        // Never hand the same bytes out twice.
        p.buf[at..at + NONCE_LEN].fill(0);
        p.next = at + NONCE_LEN;
        Ok(n)
    })
}

fn aead_key(raw: &[u8]) -> Result<LessSafeKey, CryptoError> {
    Ok(LessSafeKey::new(
        UnboundKey::new(&ALG, raw).map_err(|_| CryptoError::Seal)?,
    ))
}

fn seal_with(key: &LessSafeKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_nonce()?;
    let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + 16);
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            LcAad::from(aad),
            &mut buf[NONCE_LEN..],
        )
        .map_err(|_| CryptoError::Seal)?;
    buf.extend_from_slice(tag.as_ref());
    Ok(buf)
}

fn open_with(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
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
    key: LessSafeKey,
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
        let key = aead_key(&raw)?;
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
    aead: LessSafeKey,
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
            aead: aead_key(dek)?,
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
    fn pooled_nonces_are_never_repeated_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5_000 {
            assert!(seen.insert(random_nonce().unwrap()), "a nonce repeated");
        }
        let (kek, _) = Kek::generate().unwrap();
        let (cipher, _) = kek.new_tenant_key("t1", true).unwrap();
        let a = cipher.seal(aad("m1"), b"same").unwrap();
        let b = cipher.seal(aad("m1"), b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_eq!(cipher.open(aad("m1"), &b).unwrap(), b"same");
    }

    #[test]
    fn kek_rejects_wrong_length() {
        assert!(Kek::from_base64("aGVsbG8=").is_err());
        assert!(Kek::from_base64("not base64!").is_err());
    }
}
