//! `c24-chatcore`: the reference chat core.
//!
//! Channel ingress (web chat over WebSocket, WhatsApp webhooks, inbound
//! email), durable group-committed storage with every personal field
//! encrypted under a per-tenant key, and the admin and agent APIs.
//!
//! [`start`] is the one entry point for embedding (the console's `--demo`,
//! the load generator without `--target`, tests); `main.rs` is only its CLI.
//!
//! - [`config`]: what a core starts with. [`clock`]: the injectable clock.
//! - [`crypto`]: envelope encryption and blind indexes.
//! - [`store`]: the storage trait, SQLite, the group-commit writer.
//! - [`tenants`]: the in-memory tenant directory. [`ingress`]: sealing inbound rows.
//! - [`dsr`], [`incidents`], [`consent`]: data-subject requests, breach
//!   records and consent records; [`compliance`]: what they keep in memory.
//! - [`http`]: routes and handlers. [`push`]: fan-out to web-chat sockets.
//! - [`tls`]: rustls listener config. [`replay`]: used-signature cache.
//! - [`traffic`]: the traffic trace (shape of traffic, no personal data) and
//!   its pseudonymous export.
//! - [`cluster`]: other nodes' changes on a shared PostgreSQL (pushes, tenants).

pub mod access;
pub mod backup;
pub mod clock;
pub mod cluster;
pub mod compliance;
pub mod config;
pub mod consent;
pub mod crypto;
pub mod dsr;
pub mod events;
pub mod http;
pub mod incidents;
pub mod ingress;
pub mod push;
pub mod registry;
pub mod replay;
pub mod retention;
pub mod stats;
pub mod store;
pub mod tenants;
pub mod tls;
pub mod traffic;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

pub use config::{Config, Database, KekSource, TlsConfig};

use crate::access::AccessList;
use crate::crypto::Kek;
use crate::crypto::envelope::random_bytes;
use crate::events::EventBus;
use crate::http::{AppInner, AppState};
use crate::store::Store;
use crate::store::postgres::PgStore;
use crate::store::sqlite::SqliteStore;
use crate::tenants::TenantDirectory;

/// Name of the generated KEK file inside the data dir.
pub const KEK_FILE: &str = "kek.b64";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("key: {0}")]
    Kek(#[from] crypto::CryptoError),
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("tenant {0}: its stored key or secrets do not open with this KEK")]
    TenantKey(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("access: {0}")]
    Access(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("{0}")]
    Io(String),
}

/// A running chat core.
pub struct Running {
    addr: SocketAddr,
    tls: bool,
    admin_token: String,
    admin_token_generated: bool,
    data_dir: PathBuf,
    handle: axum_server::Handle<SocketAddr>,
    shutdown_tx: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    store: Arc<dyn Store>,
    state: AppState,
}

impl Running {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://`).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// `ws://127.0.0.1:PORT` (or `wss://`).
    pub fn ws_url(&self) -> String {
        format!("{}://{}", if self.tls { "wss" } else { "ws" }, self.addr)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Whether the admin token was generated because none was configured.
    pub fn admin_token_generated(&self) -> bool {
        self.admin_token_generated
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The development certificate, when started with `TlsConfig::SelfSigned`.
    pub fn dev_cert_path(&self) -> PathBuf {
        self.data_dir.join(tls::DEV_CERT_FILE)
    }

    /// The shared state, for in-process embedders that need the clock.
    pub fn clock(&self) -> Arc<dyn clock::Clock> {
        self.state.clock.clone()
    }

    /// Stops accepting, lets open sockets send the acks already due, commits
    /// what was queued, closes storage.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        match self.server.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "server task failed"),
            Ok(Ok(())) => {}
        }
        self.store.close().await;
        tracing::info!("stopped");
    }
}

fn load_kek(source: &KekSource, data_dir: &Path) -> Result<Kek, StartError> {
    match source {
        KekSource::File(p) => Ok(Kek::from_file(p)?),
        KekSource::Base64(s) => Ok(Kek::from_base64(s)?),
        KekSource::DataDir => {
            let path = data_dir.join(KEK_FILE);
            if path.exists() {
                return Ok(Kek::from_file(&path)?);
            }
            let (kek, text) = Kek::generate()?;
            write_private(&path, text.as_bytes())
                .map_err(|e| StartError::Io(format!("writing {}: {e}", path.display())))?;
            tracing::warn!(
                path = %path.display(),
                "no --kek-file or C24_KEK given: generated a key-encryption key in the data dir; \
                 keep it apart from the data in production"
            );
            Ok(kek)
        }
    }
}

/// Writes a new file readable by its owner only; never replaces one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Starts a chat core: opens storage, loads tenants, binds, serves.
pub async fn start(config: Config) -> Result<Running, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError::Io(format!("creating {}: {e}", config.data_dir.display())))?;
    let kek = load_kek(&config.kek, &config.data_dir)?;
    if !config.at_rest_encryption {
        tracing::warn!(
            "AT-REST ENCRYPTION IS OFF (--no-at-rest-encryption): message bodies and contact \
             fields are stored in plaintext. For measuring encryption overhead only; this \
             database can never be reopened with encryption on."
        );
    }
    let store: Arc<dyn Store> = match &config.database {
        Database::Sqlite => {
            let dir = config.data_dir.clone();
            let enc = config.at_rest_encryption;
            let clock = config.clock.clone();
            let trace = config.traffic_trace;
            Arc::new(
                tokio::task::spawn_blocking(move || {
                    SqliteStore::open_with(&dir, enc, clock, trace)
                })
                .await
                .map_err(|e| StartError::Io(e.to_string()))??,
            )
        }
        Database::Postgres { url } => Arc::new(
            PgStore::open_with_trust(
                url,
                config.at_rest_encryption,
                config.clock.clone(),
                config.traffic_trace,
                &config.database_ca_files,
            )
            .await?,
        ),
    };

    let directory = TenantDirectory::default();
    for r in store.load_tenants().await? {
        let entry = tenants::restore(&kek, &r, config.at_rest_encryption)
            .map_err(|_| StartError::TenantKey(r.id.clone()))?;
        directory.insert(entry, r.api_key_hash.clone(), r.widget_key_hash.clone());
    }

    let (admin_token, generated) = match &config.admin_token {
        Some(t) if !t.is_empty() => (t.clone(), false),
        _ => (format!("c24a_{}", hex::encode(random_bytes::<24>()?)), true),
    };
    let mut staff = vec![
        access::StaffToken::new(
            "bootstrap-admin",
            access::Role::Admin,
            &admin_token,
            config.admin_totp_secret.as_deref(),
        )
        .map_err(|e| StartError::Access(format!("--admin-totp-secret: {e}")))?,
    ];
    if let Some(path) = &config.tokens_file {
        staff.extend(AccessList::load_file(path).map_err(|e| StartError::Access(e.to_string()))?);
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = AppState(Arc::new(AppInner {
        store: store.clone(),
        tenants: Arc::new(directory),
        kek: Arc::new(kek),
        clock: config.clock.clone(),
        hub: Arc::default(),
        events: EventBus::default(),
        stats: Arc::new(stats::LiveStats::new(config.clock.now_ms())),
        open_conversations: Default::default(),
        email_replay: Default::default(),
        access: AccessList::new(staff),
        at_rest_encryption: config.at_rest_encryption,
        dev_clock: config.dev_clock,
        notice_days: config.notice_days,
        purge_interval: config.purge_interval,
        backup_dir: config.backup_dir.clone(),
        purge: Default::default(),
        registry: Default::default(),
        tenant_lists: Default::default(),
        tenant_counts: Default::default(),
        compliance: Default::default(),
        trace_rows: std::sync::atomic::AtomicI64::new(store.traffic_trace_rows().await?),
        traffic_trace: config.traffic_trace,
        tls: !matches!(config.tls, TlsConfig::Off),
        shutdown: shutdown_rx,
    }));

    for (tenant, messages, bytes, conversations) in store.usage().await? {
        if let Some(t) = state.tenants.get(&tenant) {
            t.usage.add(messages, bytes, conversations);
        }
    }
    compliance::load(&state).await?;
    http::admin::subprocessors::load(&state)
        .await
        .map_err(|e| {
            StartError::Io(format!("loading the sub-processor registry: {}", e.message))
        })?;
    cluster::spawn(state.clone());
    tokio::spawn(retention::worker(state.clone(), config.purge_interval));
    tokio::spawn(http::admin::live::ticker(state.clone()));
    tokio::spawn(retention::refresher(state.clone(), Duration::from_secs(15)));

    let tls = tls::server_config(&config.tls, &config.data_dir).await?;
    let listener =
        std::net::TcpListener::bind(config.listen).map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let listen_err = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    listener.set_nonblocking(true).map_err(listen_err)?;
    let addr = listener.local_addr().map_err(listen_err)?;
    let handle = axum_server::Handle::new();
    let app = http::router(state.clone()).into_make_service();
    let is_tls = tls.is_some();
    // Acks are small writes that must not wait behind Nagle's algorithm.
    let nodelay = axum_server::accept::NoDelayAcceptor::new();
    let server = match tls {
        None => {
            let srv = axum_server::from_tcp(listener)
                .map_err(listen_err)?
                .acceptor(nodelay)
                .handle(handle.clone());
            tokio::spawn(async move { srv.serve(app).await })
        }
        Some(cfg) => {
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(cfg).acceptor(nodelay);
            let srv = axum_server::from_tcp(listener)
                .map_err(listen_err)?
                .acceptor(acceptor)
                .handle(handle.clone());
            tokio::spawn(async move { srv.serve(app).await })
        }
    };

    tracing::info!(%addr, tls = is_tls, tenants = state.tenants.len(), "chat core started");
    Ok(Running {
        addr,
        tls: is_tls,
        admin_token,
        admin_token_generated: generated,
        data_dir: config.data_dir,
        handle,
        shutdown_tx,
        server,
        store,
        state,
    })
}
