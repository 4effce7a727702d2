//! What a chat core is started with; built by the CLI or by an embedder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

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

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Bootstrap admin bearer token; `None` generates one (see `Running::admin_token`).
    pub admin_token: Option<String>,
    pub kek: KekSource,
    /// `false` only to measure encryption overhead; the database remembers.
    pub at_rest_encryption: bool,
    pub tls: TlsConfig,
    pub clock: Arc<dyn Clock>,
}

impl Config {
    /// Defaults for an embedded core in `data_dir` on a free loopback port.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            admin_token: None,
            kek: KekSource::DataDir,
            at_rest_encryption: true,
            tls: TlsConfig::Off,
            clock: Arc::new(SystemClock),
        }
    }
}
