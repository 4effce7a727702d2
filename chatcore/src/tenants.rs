//! The tenant directory: every tenant's state, credentials and unwrapped data
//! key, held in memory so ingress never touches the database to authenticate.
//!
//! Persisted through the store; rebuilt from it at start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::crypto::envelope::random_bytes;
use crate::crypto::{Aad, CryptoError, Kek, TenantCipher};
use crate::store::TenantRecord;

/// Channel secrets, sealed under the KEK in the tenants table.
#[derive(Clone, Serialize, Deserialize)]
pub struct TenantSecrets {
    pub app_secret: String,
    pub verify_token: String,
    pub signing_key: String,
}

impl std::fmt::Debug for TenantSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TenantSecrets(..)")
    }
}

/// Why a tenant's channels refuse personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    DpaRequired,
    Suspended,
    Terminated,
}

/// Mutable lifecycle state.
#[derive(Debug, Clone)]
pub struct TenantState {
    pub status: String,
    pub dpa_signed_at: Option<Millis>,
    pub terminated_at: Option<Millis>,
    /// When the tenant's end-user data is due for deletion (termination + 30 days).
    pub purge_after: Option<Millis>,
    pub key_destroyed_at: Option<Millis>,
}

/// What a tenant has stored, kept current on commit and purge so listing
/// 10,000 tenants never counts rows.
#[derive(Debug, Default)]
pub struct TenantUsage {
    pub messages: AtomicI64,
    pub bytes: AtomicI64,
    pub conversations: AtomicI64,
}

impl TenantUsage {
    pub fn add(&self, messages: i64, bytes: i64, conversations: i64) {
        self.messages.fetch_add(messages, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.conversations
            .fetch_add(conversations, Ordering::Relaxed);
    }

    pub fn get(&self) -> (i64, i64, i64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
            self.conversations.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
pub struct TenantEntry {
    pub id: String,
    pub name: String,
    /// `name` lowercased once, for filtering and sorting.
    pub name_lower: String,
    pub created_at: Millis,
    pub phone_number_id: String,
    pub email_address: String,
    pub secrets: TenantSecrets,
    /// `None` once the key is destroyed.
    cipher: RwLock<Option<Arc<TenantCipher>>>,
    pub state: RwLock<TenantState>,
    pub usage: TenantUsage,
}

impl TenantEntry {
    /// Reads the state without cloning it.
    pub fn with_state<R>(&self, f: impl FnOnce(&TenantState) -> R) -> R {
        match self.state.read() {
            Ok(s) => f(&s),
            Err(p) => f(&p.into_inner()),
        }
    }

    pub fn state(&self) -> TenantState {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The data key, while it exists.
    pub fn cipher(&self) -> Option<Arc<TenantCipher>> {
        match self.cipher.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Changes the lifecycle state in memory (after the store committed it).
    pub fn update(&self, f: impl FnOnce(&mut TenantState)) -> TenantState {
        let mut g = match self.state.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        f(&mut g);
        g.clone()
    }

    /// Takes the stored state, as at start (another node changed the tenant
    /// and this node lost a race against it).
    pub fn catch_up(&self, r: &TenantRecord) -> TenantState {
        if r.wrapped_dek.is_none() {
            self.drop_key();
        }
        self.update(|s| *s = stored_state(r))
    }

    /// Forgets the data key (crypto-shredding; the store has dropped it already).
    pub fn drop_key(&self) {
        let mut g = match self.cipher.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = None;
    }

    /// Whether ingress may accept personal data for this tenant now.
    pub fn admit(&self) -> Result<Arc<TenantCipher>, Refusal> {
        let s = self.state();
        match s.status.as_str() {
            "suspended" => return Err(Refusal::Suspended),
            "terminated" | "purged" => return Err(Refusal::Terminated),
            _ => {}
        }
        if s.dpa_signed_at.is_none() {
            return Err(Refusal::DpaRequired);
        }
        self.cipher().ok_or(Refusal::Terminated)
    }
}

/// Freshly issued credentials: returned once to the creator, never stored in
/// plaintext (keys as SHA-256, secrets sealed under the KEK).
#[derive(Debug, Clone)]
pub struct IssuedCredentials {
    pub api_key: String,
    pub widget_key: String,
}

pub fn sha256(s: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, s.as_bytes())
        .as_ref()
        .to_vec()
}

fn token(prefix: &str) -> Result<String, CryptoError> {
    Ok(format!("{prefix}{}", hex::encode(random_bytes::<24>()?)))
}

fn secrets_aad(id: &str) -> Aad<'_> {
    Aad {
        tenant: id,
        table: "tenants",
        row: id,
        column: "secrets",
    }
}

/// A new tenant: the record to store, the entry to serve, the credentials to show.
pub fn issue(
    kek: &Kek,
    name: &str,
    dpa_signed_at: Option<Millis>,
    now: Millis,
    at_rest_encryption: bool,
) -> Result<(TenantRecord, TenantEntry, IssuedCredentials), CryptoError> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let api_key = token("c24k_")?;
    let widget_key = token("wk_")?;
    let secrets = TenantSecrets {
        app_secret: hex::encode(random_bytes::<32>()?),
        verify_token: hex::encode(random_bytes::<16>()?),
        signing_key: hex::encode(random_bytes::<32>()?),
    };
    let digits = random_bytes::<8>()?;
    let phone_number_id = format!("1{:014}", u64::from_le_bytes(digits) % 100_000_000_000_000);
    let email_address = format!("inbox-{}@inbound.c24.local", &id[id.len() - 12..]);
    let (cipher, wrapped) = kek.new_tenant_key(&id, at_rest_encryption)?;
    let sealed = kek.seal(
        secrets_aad(&id),
        &serde_json::to_vec(&secrets).map_err(|_| CryptoError::Seal)?,
    )?;
    let status = "active".to_string();
    let record = TenantRecord {
        id: id.clone(),
        name: name.to_string(),
        status: status.clone(),
        dpa_signed_at,
        created_at: now,
        api_key_hash: sha256(&api_key),
        widget_key_hash: sha256(&widget_key),
        phone_number_id: phone_number_id.clone(),
        email_address: email_address.clone(),
        secrets: sealed,
        wrapped_dek: Some(wrapped),
        key_destroyed_at: None,
        terminated_at: None,
        purge_after: None,
    };
    let entry = TenantEntry {
        id,
        name: name.to_string(),
        name_lower: name.to_lowercase(),
        created_at: now,
        phone_number_id,
        email_address,
        secrets,
        cipher: RwLock::new(Some(Arc::new(cipher))),
        state: RwLock::new(TenantState {
            status,
            dpa_signed_at,
            terminated_at: None,
            purge_after: None,
            key_destroyed_at: None,
        }),
        usage: TenantUsage::default(),
    };
    Ok((
        record,
        entry,
        IssuedCredentials {
            api_key,
            widget_key,
        },
    ))
}

/// Rebuilds a served entry from its stored record.
pub fn restore(
    kek: &Kek,
    r: &TenantRecord,
    at_rest_encryption: bool,
) -> Result<TenantEntry, CryptoError> {
    let secrets: TenantSecrets = serde_json::from_slice(&kek.open(secrets_aad(&r.id), &r.secrets)?)
        .map_err(|_| CryptoError::Open)?;
    let cipher = match &r.wrapped_dek {
        Some(w) => Some(Arc::new(kek.open_tenant_key(
            &r.id,
            w,
            at_rest_encryption,
        )?)),
        None => None,
    };
    Ok(TenantEntry {
        id: r.id.clone(),
        name: r.name.clone(),
        name_lower: r.name.to_lowercase(),
        created_at: r.created_at,
        phone_number_id: r.phone_number_id.clone(),
        email_address: r.email_address.clone(),
        secrets,
        cipher: RwLock::new(cipher),
        state: RwLock::new(stored_state(r)),
        usage: TenantUsage::default(),
    })
}

fn stored_state(r: &TenantRecord) -> TenantState {
    TenantState {
        // The keyring is the truth about keys: a database restored from a
        // backup taken before the key was destroyed still says otherwise.
        status: if r.key_destroyed_at.is_some() {
            "purged".to_string()
        } else {
            r.status.clone()
        },
        dpa_signed_at: r.dpa_signed_at,
        terminated_at: r.terminated_at,
        purge_after: r.purge_after,
        key_destroyed_at: r.key_destroyed_at,
    }
}

#[derive(Default)]
struct Indexes {
    by_id: HashMap<String, Arc<TenantEntry>>,
    by_api_key: HashMap<Vec<u8>, String>,
    by_widget_key: HashMap<Vec<u8>, String>,
}

/// All tenants, by id and by credential hash.
#[derive(Default)]
pub struct TenantDirectory {
    inner: RwLock<Indexes>,
    /// Bumped on every insert and lifecycle change: cached listings check it.
    version: std::sync::atomic::AtomicU64,
}

impl TenantDirectory {
    pub fn insert(&self, entry: TenantEntry, api_key_hash: Vec<u8>, widget_key_hash: Vec<u8>) {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let id = entry.id.clone();
        g.by_api_key.insert(api_key_hash, id.clone());
        g.by_widget_key.insert(widget_key_hash, id.clone());
        g.by_id.insert(id, Arc::new(entry));
        drop(g);
        self.bump();
    }

    /// Marks a change (a tenant's state moved) for cached listings.
    pub fn bump(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Indexes> {
        match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    pub fn get(&self, id: &str) -> Option<Arc<TenantEntry>> {
        self.read().by_id.get(id).cloned()
    }

    pub fn by_api_key(&self, key: &str) -> Option<Arc<TenantEntry>> {
        let g = self.read();
        g.by_api_key
            .get(&sha256(key))
            .and_then(|id| g.by_id.get(id).cloned())
    }

    pub fn by_widget_key(&self, key: &str) -> Option<Arc<TenantEntry>> {
        let g = self.read();
        g.by_widget_key
            .get(&sha256(key))
            .and_then(|id| g.by_id.get(id).cloned())
    }

    /// Every tenant, in no particular order.
    pub fn all_unordered(&self) -> Vec<Arc<TenantEntry>> {
        self.read().by_id.values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
