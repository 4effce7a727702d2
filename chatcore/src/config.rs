//! What a chat core is started with; built by the CLI or by an embedder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};

/// Where the key-encryption key comes from.
#[derive(Debug, Clone)]
pub enum KekSource {
    /// `--kek-file`: base64 of 32 bytes.
    File(PathBuf),
    /// `C24_KEK`: base64 of 32 bytes.
    Base64(String),
    /// Neither given: `kek.b64` in the data dir, generated (mode 0600) if absent.
    DataDir,
}

/// TLS on the listener.
#[derive(Debug, Clone)]
pub enum TlsConfig {
    /// Plain HTTP.
    Off,
    /// PEM certificate chain and private key.
    Files { cert: PathBuf, key: PathBuf },
    /// A development certificate for `localhost`/`127.0.0.1`, generated at
    /// start and written to `dev-cert.pem` in the data dir for clients to trust.
    SelfSigned,
}

/// Which database holds the data.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Database {
    /// SQLite in the data dir: the embedded default.
    #[default]
    Sqlite,
    /// `--database postgres://...`: PostgreSQL, which several nodes can share.
    Postgres { url: String },
}

impl Database {
    /// Parses `--database`: a `postgres://` or `postgresql://` URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Database::Postgres { url: s.to_string() })
        } else {
            Err(
                "expected a postgres:// URL (without --database, SQLite in --data-dir is used)"
                    .into(),
            )
        }
    }
}

impl std::fmt::Debug for Database {
    // The URL may carry a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite => f.write_str("Sqlite"),
            Database::Postgres { url } => f
                .debug_struct("Postgres")
                .field("url", &crate::store::postgres::redact_url(url))
                .finish(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the data lives; SQLite in `data_dir` unless PostgreSQL is chosen.
    /// The data dir still holds a generated KEK and the dev certificate.
    pub database: Database,
    /// Extra trust anchors (PEM) for PostgreSQL's certificate, besides the
    /// system's roots (`--database-ca-file`; used with `sslmode=require`).
    pub database_ca_files: Vec<PathBuf>,
    /// Bootstrap admin bearer token; `None` generates one (see `Running::admin_token`).
    pub admin_token: Option<String>,
    pub kek: KekSource,
    /// `false` only to measure encryption overhead; the database remembers.
    pub at_rest_encryption: bool,
    pub tls: TlsConfig,
    pub clock: Arc<dyn Clock>,
    /// `--tokens-file`: staff tokens (TOML `[[token]]`, SHA-256 only).
    pub tokens_file: Option<PathBuf>,
    /// `--admin-totp-secret`: base32 TOTP secret of the bootstrap admin token.
    pub admin_totp_secret: Option<String>,
    /// `--dev-clock`: enables `POST /admin/v1/clock/advance`.
    pub dev_clock: bool,
    /// `--notice-days`: least notice for a sub-processor change.
    pub notice_days: u32,
    /// `--purge-interval`: how often the purge worker runs.
    pub purge_interval: Duration,
    /// `--backup-dir`: where `c24-core backup` writes; the retention report
    /// counts the backups there and the purge worker deletes those past 7 days.
    pub backup_dir: Option<PathBuf>,
    /// Record the traffic trace (`--no-traffic-trace` turns it off, e.g. to
    /// measure what it costs; the export is then empty).
    pub traffic_trace: bool,
}

impl Config {
    /// Enables the dev clock (`POST /admin/v1/clock/advance`) with an advanceable clock.
    pub fn with_dev_clock(mut self) -> Self {
        self.dev_clock = true;
        self.clock = Arc::new(crate::clock::OffsetClock::default());
        self
    }

    /// Defaults for an embedded core in `data_dir` on a free loopback port.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database: Database::Sqlite,
            database_ca_files: Vec::new(),
            admin_token: None,
            kek: KekSource::DataDir,
            at_rest_encryption: true,
            tls: TlsConfig::Off,
            clock: Arc::new(SystemClock),
            tokens_file: None,
            admin_totp_secret: None,
            dev_clock: false,
            notice_days: 30,
            purge_interval: Duration::from_secs(60),
            backup_dir: None,
            traffic_trace: true,
        }
    }
}
