//! End-to-end test helpers: an embedded chat core in a temp dir (started
//! through `c24_chatcore::start`, the library entry point), tenants created
//! through the admin API, and signed channel requests — all over real
//! sockets on 127.0.0.1.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::client::Client;
use c24_chatcore::{Config, Database, Running};

pub mod backend;
pub mod inspect;

/// How long a test waits for any single answer.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Core {
    pub running: Running,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    pub admin: Client,
}

impl Core {
    /// A core with default settings in a fresh temp dir.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// A core with `adjust` applied to the embedded defaults.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        Self::start_in(dir, adjust).await
    }

    /// A core on an existing data dir (e.g. after a restart).
    pub async fn start_in(
        dir: tempfile::TempDir,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<Self> {
        let mut cfg = Config::embedded(dir.path());
        if let Some(url) = backend::database_for(dir.path()).await? {
            cfg.database = Database::Postgres { url };
        }
        cfg.admin_token = Some("test-admin-token".into());
        adjust(&mut cfg);
        let running = c24_chatcore::start(cfg).await?;
        let http = reqwest::Client::new();
        let admin = Client::with_http(http.clone(), &running.url(), running.admin_token());
        Ok(Self {
            running,
            dir,
            http,
            admin,
        })
    }

    /// Stops the core and hands back its data dir.
    pub async fn stop(self) -> tempfile::TempDir {
        self.running.shutdown().await;
        self.dir
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    /// `GET path` with `token` (the admin token when `None`): its JSON body.
    pub async fn get_json(
        &self,
        path: &str,
        token: Option<&str>,
    ) -> anyhow::Result<serde_json::Value> {
        let token = token.unwrap_or(self.running.admin_token());
        Ok(self
            .http
            .get(format!("{}{path}", self.url()))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?)
    }

    /// `POST path` with a JSON body, `token` (the admin token when `None`)
    /// and, for a privileged write, a TOTP code: the status and JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        token: Option<&str>,
        totp: Option<&str>,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let token = token.unwrap_or(self.running.admin_token());
        let mut req = self
            .http
            .post(format!("{}{path}", self.url()))
            .bearer_auth(token)
            .json(body);
        if let Some(code) = totp {
            req = req.header("X-C24-TOTP", code);
        }
        let resp = req.send().await?;
        Ok((resp.status().as_u16(), resp.json().await?))
    }

    pub fn ws_url(&self) -> String {
        self.running.ws_url()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL database this core runs on (`None`: SQLite in its data dir).
    pub fn database_url(&self) -> Option<String> {
        backend::database_of(self.dir.path())
    }

    /// Where `needle` is stored at rest: in the files of the data dir (for
    /// SQLite the database, WAL and side files, described by
    /// [`occurrences`]) and, on PostgreSQL, in the live rows of the core's
    /// database ([`backend::rows_containing`]).
    pub async fn stored(&self, needle: &[u8]) -> anyhow::Result<Vec<String>> {
        let mut hits = occurrences(self.data_dir(), needle)?;
        if let Some(url) = self.database_url() {
            hits.extend(backend::rows_containing(&url, needle).await?);
        }
        Ok(hits)
    }

    pub async fn tenant(&self, name: &str, dpa_signed: bool) -> anyhow::Result<TenantCreated> {
        Ok(self
            .admin
            .create_tenant(&CreateTenant {
                name: name.into(),
                dpa_signed,
            })
            .await?)
    }

    /// A client authenticated as the tenant.
    pub fn as_tenant(&self, t: &TenantCreated) -> Client {
        self.admin.with_token(&t.api_key)
    }

    /// Every message the tenant has stored, summed over its conversations.
    pub async fn message_count(&self, t: &TenantCreated) -> anyhow::Result<i64> {
        let list = self.as_tenant(t).conversations().await?;
        Ok(list.items.iter().map(|c| c.message_count).sum())
    }

    /// POSTs a signed WhatsApp notification.
    pub async fn whatsapp(
        &self,
        t: &TenantCreated,
        body: &[u8],
        signature: Option<String>,
    ) -> anyhow::Result<reqwest::Response> {
        let sig = signature.unwrap_or_else(|| {
            c24_api::whatsapp::signature_header(&t.channels.whatsapp.app_secret, body)
        });
        Ok(self
            .http
            .post(format!("{}/v1/whatsapp/{}/webhook", self.url(), t.id))
            .header("Content-Type", "application/json")
            .header(c24_api::whatsapp::SIGNATURE_HEADER, sig)
            .body(body.to_vec())
            .send()
            .await?)
    }

    /// POSTs a signed raw email, stamped now (or at `ts`).
    pub async fn email(
        &self,
        t: &TenantCreated,
        raw: &[u8],
        ts: Option<i64>,
    ) -> anyhow::Result<reqwest::Response> {
        let ts = ts.unwrap_or_else(unix_now).to_string();
        let sig = c24_api::email::signature_header(&t.channels.email.signing_key, &ts, raw);
        self.email_signed(t, raw, &ts, &sig).await
    }

    pub async fn email_signed(
        &self,
        t: &TenantCreated,
        raw: &[u8],
        ts: &str,
        sig: &str,
    ) -> anyhow::Result<reqwest::Response> {
        Ok(self
            .http
            .post(format!("{}/v1/email/{}/inbound", self.url(), t.id))
            .header("Content-Type", c24_api::email::CONTENT_TYPE)
            .header(c24_api::email::TIMESTAMP_HEADER, ts)
            .header(c24_api::email::SIGNATURE_HEADER, sig)
            .body(raw.to_vec())
            .send()
            .await?)
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A unique marker string, so a grep can only match what this test wrote.
pub fn marker(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// A config adjustment for [`Core::start_with`] / [`Core::start_in`]: the
/// dev clock and the admin token's TOTP secret.
pub fn dev_clock_with_totp(secret: &str) -> impl FnOnce(&mut Config) + '_ {
    move |c| {
        *c = c.clone().with_dev_clock();
        c.admin_totp_secret = Some(secret.into());
    }
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    Ok(files)
}

/// Every file under `dir` (recursively) whose bytes contain `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> anyhow::Result<Vec<PathBuf>> {
    let mut hits = Vec::new();
    for path in files_under(dir)? {
        let bytes = std::fs::read(&path)?;
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(path);
        }
    }
    Ok(hits)
}

/// Where `needle` occurs in the files under `dir`: each file with the byte
/// offsets of its occurrences, described for SQLite files (database page or
/// WAL frame), so a failing "no trace" check says exactly what is left.
pub fn occurrences(dir: &Path, needle: &[u8]) -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    for path in files_under(dir)? {
        let bytes = std::fs::read(&path)?;
        let offsets: Vec<usize> = bytes
            .windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| i)
            .collect();
        if offsets.is_empty() {
            continue;
        }
        let name = path.display().to_string();
        let wal = name.ends_with("-wal");
        // The WAL header says the page size; frames are a 24-byte header and a page.
        let page = if wal && bytes.len() >= 12 {
            u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
        } else if bytes.len() >= 18 && bytes.starts_with(b"SQLite format 3") {
            match u16::from_be_bytes([bytes[16], bytes[17]]) {
                1 => 65536,
                n => n as usize,
            }
        } else {
            0
        };
        let at: Vec<String> = offsets
            .iter()
            .map(|&o| match (wal, page) {
                (_, 0) => format!("@{o}"),
                (true, p) if o >= 32 => {
                    let frame = (o - 32) / (p + 24);
                    let fo = 32 + frame * (p + 24);
                    let pgno = u32::from_be_bytes([
                        bytes[fo],
                        bytes[fo + 1],
                        bytes[fo + 2],
                        bytes[fo + 3],
                    ]);
                    format!("@{o} (frame {frame}, page {pgno})")
                }
                (true, _) => format!("@{o} (WAL header)"),
                (false, p) => format!("@{o} (page {}, byte {})", o / p + 1, o % p),
            })
            .collect();
        found.push(format!("{name} ({} bytes) {}", bytes.len(), at.join(", ")));
    }
    Ok(found)
}

/// A one-text WhatsApp notification as Meta sends it.
pub fn whatsapp_text(
    t: &TenantCreated,
    from: &str,
    name: &str,
    msg_id: &str,
    body: &str,
) -> Vec<u8> {
    let n = c24_api::whatsapp::Notification::text_message(
        &t.channels.whatsapp.phone_number_id,
        from,
        name,
        msg_id,
        unix_now(),
        body,
    );
    serde_json::to_vec(&n).unwrap_or_default()
}

/// A staff token of the test tokens file.
#[derive(Debug, Clone)]
pub struct StaffToken {
    pub token: String,
    pub totp_secret: Option<String>,
}

/// The staff of the test tokens file.
#[derive(Debug, Clone)]
pub struct StaffTokens {
    pub viewer: StaffToken,
    pub operator: StaffToken,
    pub admin: StaffToken,
    /// An admin without an enrolled second factor.
    pub admin_no_totp: StaffToken,
}

pub const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXP";
const TOTP_SECRET_2: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// Writes a tokens file (hashes only) into `dir`.
pub fn write_tokens_file(dir: &Path) -> anyhow::Result<(PathBuf, StaffTokens)> {
    let staff = StaffTokens {
        viewer: StaffToken {
            token: "viewer-token".into(),
            totp_secret: None,
        },
        operator: StaffToken {
            token: "operator-token".into(),
            totp_secret: Some(TOTP_SECRET.into()),
        },
        admin: StaffToken {
            token: "admin-token".into(),
            totp_secret: Some(TOTP_SECRET_2.into()),
        },
        admin_no_totp: StaffToken {
            token: "admin-no-totp-token".into(),
            totp_secret: None,
        },
    };
    let mut text = String::new();
    for (name, role, t) in [
        ("vera", "viewer", &staff.viewer),
        ("otto", "operator", &staff.operator),
        ("ada", "admin", &staff.admin),
        ("nils", "admin", &staff.admin_no_totp),
    ] {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.token.as_bytes());
        text.push_str(&format!(
            "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
            hex::encode(hash.as_ref())
        ));
        if let Some(s) = &t.totp_secret {
            text.push_str(&format!("totp_secret = \"{s}\"\n"));
        }
        text.push('\n');
    }
    let path = dir.join("tokens.toml");
    std::fs::write(&path, text)?;
    Ok((path, staff))
}

/// Hands out TOTP codes for one secret in strictly increasing 30-second
/// steps: the server accepts each step once, with one step of skew, so a
/// test gets two privileged writes per token (now, and the next step).
pub struct TotpCodes {
    totp: totp_rs::TOTP,
    next_offset: i64,
}

impl TotpCodes {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            totp: c24_chatcore::access::totp(secret).map_err(anyhow::Error::msg)?,
            next_offset: 0,
        })
    }

    /// The next valid, unused code.
    pub fn code(&mut self) -> anyhow::Result<String> {
        anyhow::ensure!(
            self.next_offset <= 30,
            "out of TOTP steps for this half minute"
        );
        let at = (unix_now() + self.next_offset).max(0) as u64;
        self.next_offset += 30;
        Ok(self.totp.generate(at))
    }
}

/// Staff tokens of one role sharing [`TOTP_SECRET`]: each token gives two
/// privileged writes (see [`TotpCodes`]), so a pool of them gives many.
pub struct TotpPool {
    tokens: Vec<(String, TotpCodes)>,
    next: usize,
}

impl TotpPool {
    /// Appends `n` tokens named `{prefix}{i}` with `role` to `tokens_file`.
    pub fn add_to(tokens_file: &Path, prefix: &str, role: &str, n: usize) -> anyhow::Result<Self> {
        let mut text = std::fs::read_to_string(tokens_file).unwrap_or_default();
        let mut tokens = Vec::with_capacity(n);
        for i in 0..n {
            let token = format!("{prefix}-token-{i}");
            let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
            text.push_str(&format!(
                "[[token]]\nname = \"{prefix}{i}\"\nrole = \"{role}\"\nsha256 = \"{}\"\ntotp_secret = \"{TOTP_SECRET}\"\n\n",
                hex::encode(hash.as_ref())
            ));
            tokens.push((token, TotpCodes::new(TOTP_SECRET)?));
        }
        std::fs::write(tokens_file, text)?;
        Ok(Self { tokens, next: 0 })
    }

    /// A token of the pool and a fresh code for it.
    pub fn code(&mut self) -> anyhow::Result<(String, String)> {
        anyhow::ensure!(!self.tokens.is_empty(), "an empty TOTP pool");
        let i = self.next % self.tokens.len();
        self.next += 1;
        let (token, codes) = &mut self.tokens[i];
        Ok((token.clone(), codes.code()?))
    }
}
