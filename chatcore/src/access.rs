//! Who may use the admin API: staff tokens with roles, and TOTP second factors.
//!
//! Tokens come from `--tokens-file` (TOML `[[token]]` entries holding only the
//! SHA-256 of each token, never the token) plus the bootstrap admin token.
//! Roles are ordered `viewer < operator < admin`; every route names the least
//! role it needs. Privileged writes also need an RFC 6238 code (SHA-1,
//! 6 digits, 30 s) from the token's enrolled secret. TOTP reads real time,
//! not the injectable clock: the authenticator on a phone does.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use serde::Deserialize;
use totp_rs::{Algorithm, Secret, TOTP};

use crate::store::Store;
use crate::tenants::sha256;

/// Least privilege: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: token {name:?}: {message}")]
    Token {
        path: String,
        name: String,
        message: String,
    },
}

/// One `[[token]]` entry of the tokens file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    role: Role,
    /// Hex SHA-256 of the bearer token.
    sha256: String,
    /// Base32 TOTP secret, when the token is enrolled for a second factor.
    totp_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

/// A staff member's token, as held in memory.
pub struct StaffToken {
    pub name: String,
    pub role: Role,
    hash: Vec<u8>,
    totp: Option<TOTP>,
}

impl std::fmt::Debug for StaffToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffToken")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("totp", &self.totp.is_some())
            .finish()
    }
}

/// Builds a TOTP checker (one step of clock skew either way).
pub fn totp(secret_base32: &str) -> Result<TOTP, String> {
    let cleaned: String = secret_base32
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=')
        .collect::<String>()
        .to_uppercase();
    let bytes = Secret::Encoded(cleaned)
        .to_bytes()
        .map_err(|e| e.to_string())?;
    if bytes.len() < 10 {
        return Err("the TOTP secret must be at least 80 bits".into());
    }
    // `new` insists on 128 bits; common authenticator secrets are 80.
    Ok(TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes))
}

/// Why a second factor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaRefusal {
    Missing,
    Invalid,
    NotEnrolled,
    /// The shared record of used steps could not be reached.
    Unavailable,
}

/// Steps kept in the shared record: a code is valid one step either side,
/// so older steps can never match again.
const KEEP_STEPS: i64 = 10;

impl StaffToken {
    pub fn new(
        name: &str,
        role: Role,
        token: &str,
        totp_secret: Option<&str>,
    ) -> Result<Self, String> {
        Ok(Self {
            name: name.to_string(),
            role,
            hash: sha256(token),
            totp: totp_secret.map(totp).transpose()?,
        })
    }

    pub fn enrolled(&self) -> bool {
        self.totp.is_some()
    }
}

/// All staff tokens, with the last TOTP step each one used (a code is good once).
#[derive(Debug, Default)]
pub struct AccessList {
    tokens: Vec<StaffToken>,
    last_step: Mutex<HashMap<usize, u64>>,
}

impl AccessList {
    pub fn new(tokens: Vec<StaffToken>) -> Self {
        Self {
            tokens,
            last_step: Mutex::default(),
        }
    }

    /// Parses a tokens file.
    pub fn load_file(path: &Path) -> Result<Vec<StaffToken>, AccessError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| AccessError::Read {
            path: p.clone(),
            source,
        })?;
        let parsed: TokensFile = toml::from_str(&text).map_err(|e| AccessError::Parse {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let mut out = Vec::with_capacity(parsed.token.len());
        for t in parsed.token {
            let bad = |message: String| AccessError::Token {
                path: p.clone(),
                name: t.name.clone(),
                message,
            };
            let hash = hex::decode(t.sha256.trim())
                .ok()
                .filter(|h| h.len() == 32)
                .ok_or_else(|| bad("sha256 must be 64 hex digits".into()))?;
            let totp = t
                .totp_secret
                .as_deref()
                .map(totp)
                .transpose()
                .map_err(bad)?;
            out.push(StaffToken {
                name: t.name.clone(),
                role: t.role,
                hash,
                totp,
            });
        }
        Ok(out)
    }

    /// The token's entry. Every entry is compared, in constant time, so the
    /// time taken says nothing about which (if any) matched.
    pub fn find(&self, token: &str) -> Option<(usize, &StaffToken)> {
        let h = sha256(token);
        let mut found = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if aws_lc_rs::constant_time::verify_slices_are_equal(&h, &t.hash).is_ok() {
                found = Some(i);
            }
        }
        found.and_then(|i| self.tokens.get(i).map(|t| (i, t)))
    }

    /// Checks a TOTP code for token `idx` at real time `unix_secs`; each
    /// 30-second step is accepted once per token (by this node).
    pub fn check_totp(
        &self,
        idx: usize,
        code: Option<&str>,
        unix_secs: u64,
    ) -> Result<(), MfaRefusal> {
        self.check_totp_step(idx, code, unix_secs).map(|_| ())
    }

    /// [`Self::check_totp`], then once across every node sharing `store`'s
    /// database: the step is recorded there, and a step some node recorded
    /// already is refused (a code replayed on another node).
    pub async fn check_totp_shared(
        &self,
        store: &dyn Store,
        idx: usize,
        code: Option<&str>,
        unix_secs: u64,
    ) -> Result<(), MfaRefusal> {
        let step = self.check_totp_step(idx, code, unix_secs)?;
        let key = self
            .tokens
            .get(idx)
            .map(|t| hex::encode(sha256(&format!("totp-step:{}", hex::encode(&t.hash)))))
            .ok_or(MfaRefusal::Invalid)?;
        let step = i64::try_from(step).map_err(|_| MfaRefusal::Invalid)?;
        match store.claim_totp_step(&key, step, step - KEEP_STEPS).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MfaRefusal::Invalid),
            Err(e) => {
                tracing::warn!(error = %e, "recording a TOTP step failed");
                Err(MfaRefusal::Unavailable)
            }
        }
    }

    /// The step a code matched, recorded in this node's memory.
    fn check_totp_step(
        &self,
        idx: usize,
        code: Option<&str>,
        unix_secs: u64,
    ) -> Result<u64, MfaRefusal> {
        let t = self.tokens.get(idx).ok_or(MfaRefusal::Invalid)?;
        let totp = t.totp.as_ref().ok_or(MfaRefusal::NotEnrolled)?;
        let code = code
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .ok_or(MfaRefusal::Missing)?;
        // Which step matched (skew ±1), so a replay of the same code is refused.
        let step = [0i64, -1, 1].into_iter().find_map(|d| {
            let at = (unix_secs as i64 + d * 30).max(0) as u64;
            let expected = totp.generate(at);
            aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_bytes(), code.as_bytes())
                .is_ok()
                .then_some(at / 30)
        });
        let step = step.ok_or(MfaRefusal::Invalid)?;
        let mut last = match self.last_step.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if last.get(&idx).is_some_and(|&s| s >= step) {
            return Err(MfaRefusal::Invalid);
        }
        last.insert(idx, step);
        Ok(step)
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// Real time, for TOTP.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "JBSWY3DPEHPK3PXP";

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn tokens_file_parses_and_rejects_plaintext_mistakes() {
        // A fresh directory per run, removed when the test ends.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let good = dir.join("good.toml");
        std::fs::write(
            &good,
            format!(
                "[[token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\ntotp_secret = \"{SECRET}\"\n",
                hex::encode(sha256("s3cret"))
            ),
        )
        .unwrap();
        let list = AccessList::new(AccessList::load_file(&good).unwrap());
        let (_, t) = list.find("s3cret").unwrap();
        assert_eq!(
            (t.name.as_str(), t.role, t.enrolled()),
            ("ops", Role::Operator, true)
        );
        assert!(list.find("other").is_none());

        let bad = dir.join("bad.toml");
        std::fs::write(
            &bad,
            "[[token]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"plaintext\"\n",
        )
        .unwrap();
        let err = AccessList::load_file(&bad).unwrap_err().to_string();
        assert!(err.contains("sha256"), "{err}");
        std::fs::write(
            &bad,
            "[[token]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"00\"\n",
        )
        .unwrap();
        assert!(AccessList::load_file(&bad).is_err());
    }

    #[test]
    fn totp_codes_check_once_and_only_when_enrolled() {
        let t = StaffToken::new("a", Role::Admin, "tok", Some(SECRET)).unwrap();
        let plain = StaffToken::new("b", Role::Admin, "tok2", None).unwrap();
        let list = AccessList::new(vec![t, plain]);
        let now = 1_800_000_000;
        let code = totp(SECRET).unwrap().generate(now);
        assert_eq!(list.check_totp(0, None, now), Err(MfaRefusal::Missing));
        assert_eq!(
            list.check_totp(0, Some("000000"), now).is_err(),
            code != "000000"
        );
        assert_eq!(list.check_totp(0, Some(&code), now), Ok(()));
        assert_eq!(
            list.check_totp(0, Some(&code), now),
            Err(MfaRefusal::Invalid)
        );
        assert_eq!(
            list.check_totp(1, Some(&code), now),
            Err(MfaRefusal::NotEnrolled)
        );
        // RFC 6238 appendix B vector (SHA-1, 8 digits there; 6 here is its suffix).
        let rfc = totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(rfc.generate(59), "287082");
    }
}
