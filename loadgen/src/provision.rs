//! The target: an embedded chat core in a temp dir (through
//! `c24_chatcore::start`, its library entry point) or a running one given by
//! URL; and the tenants the traffic goes to, created through the admin API
//! or read from a credentials file.

use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::client::Client;

use std::sync::Arc;

use crate::scenario::{Channel, TenantSpec};
use crate::tls::{ClientTls, TlsOptions};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The command line is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The target did not answer or refused (exit 3).
    #[error("{0}")]
    Unreachable(String),
}

/// Where the traffic goes.
pub struct Target {
    pub http_base: String,
    pub ws_base: String,
    pub admin_token: Option<String>,
    embedded: Option<(c24_chatcore::Running, tempfile::TempDir)>,
    /// Trust for an `https://` target (`--ca-file`, or an embedded core's dev cert).
    tls: Option<Arc<ClientTls>>,
}

/// How to start an embedded core: the variants `compare` sets side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// Serve HTTPS/WSS with a self-signed development certificate (trusted
    /// by this run only).
    pub tls: bool,
    /// `false` is the core's `--no-at-rest-encryption`.
    pub at_rest_encryption: bool,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            tls: false,
            at_rest_encryption: true,
        }
    }
}

impl Target {
    /// Starts a chat core on a free loopback port with a fresh temp data dir.
    pub async fn embedded() -> Result<Self, ProvisionError> {
        Self::embedded_with(EmbeddedOptions::default()).await
    }

    /// An embedded core started the way `opts` says.
    pub async fn embedded_with(opts: EmbeddedOptions) -> Result<Self, ProvisionError> {
        let dir = tempfile::Builder::new()
            .prefix("c24-loadgen-core-")
            .tempdir()
            .map_err(|e| {
                ProvisionError::Unreachable(format!(
                    "creating a temp dir for the embedded core: {e}"
                ))
            })?;
        let mut cfg = c24_chatcore::Config::embedded(dir.path());
        // A throwaway key for a throwaway database: generating it into the
        // data dir would only print the core's warning about key placement.
        let kek: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
        cfg.kek = c24_chatcore::KekSource::Base64(base64_encode(&kek));
        cfg.at_rest_encryption = opts.at_rest_encryption;
        if opts.tls {
            cfg.tls = c24_chatcore::TlsConfig::SelfSigned;
        }
        let running = c24_chatcore::start(cfg).await.map_err(|e| {
            ProvisionError::Unreachable(format!("starting the embedded chat core: {e}"))
        })?;
        let tls = if opts.tls {
            let t = ClientTls::new(&TlsOptions {
                ca_files: vec![running.dev_cert_path()],
                insecure: false,
            })
            .map_err(|e| {
                ProvisionError::Unreachable(format!("the embedded core's certificate: {e}"))
            })?;
            Some(Arc::new(t))
        } else {
            None
        };
        Ok(Target {
            http_base: running.url(),
            ws_base: running.ws_url(),
            admin_token: Some(running.admin_token().to_string()),
            embedded: Some((running, dir)),
            tls,
        })
    }

    /// A running core; answers `/healthz` or the run cannot start.
    pub async fn remote(url: &str, admin_token: Option<String>) -> Result<Self, ProvisionError> {
        Self::remote_with_tls(url, admin_token, None).await
    }

    /// A running core reached with the given trust (for `https://`).
    pub async fn remote_with_tls(
        url: &str,
        admin_token: Option<String>,
        tls: Option<Arc<ClientTls>>,
    ) -> Result<Self, ProvisionError> {
        let target = Self::unprobed(url, admin_token, tls)?;
        let base = &target.http_base;
        let client = api_client(
            base,
            target.admin_token.as_deref().unwrap_or(""),
            target.tls.as_deref(),
        )
        .map_err(|e| ProvisionError::Usage(format!("--target {url}: {e}")))?;
        let probe = tokio::time::timeout(std::time::Duration::from_secs(5), client.healthz()).await;
        match probe {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                // reqwest's top-level message hides the cause (an untrusted
                // certificate, a refused connection): name the deepest one.
                let mut cause = String::new();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    cause = format!(" ({s})");
                    src = s.source();
                }
                let hint = if base.starts_with("https://") {
                    "; if its certificate is not one the system trusts, give --ca-file PEM"
                } else {
                    ""
                };
                let e = format!("{e}{cause}");
                return Err(ProvisionError::Unreachable(format!(
                    "target {base} is not reachable: GET /healthz: {e}{hint}"
                )));
            }
            Err(_) => {
                return Err(ProvisionError::Unreachable(format!(
                    "target {base} is not reachable: GET /healthz timed out after 5s"
                )));
            }
        }
        Ok(target)
    }

    /// No chat core at all: a scenario of generic steps whose templates
    /// name their own URLs.
    pub fn none() -> Self {
        Target {
            http_base: String::new(),
            ws_base: String::new(),
            admin_token: None,
            embedded: None,
            tls: None,
        }
    }

    /// A target that need not be a c24 core (generic steps only use it as
    /// `{target}`): the URL is checked, not probed.
    pub fn unprobed(
        url: &str,
        admin_token: Option<String>,
        tls: Option<Arc<ClientTls>>,
    ) -> Result<Self, ProvisionError> {
        let base = url.trim_end_matches('/').to_string();
        let ws_base = ws_url(&base).ok_or_else(|| {
            ProvisionError::Usage(format!(
                "--target {url}: expected a URL like http://127.0.0.1:8080"
            ))
        })?;
        Ok(Target {
            http_base: base,
            ws_base,
            admin_token,
            embedded: None,
            tls,
        })
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// An admin client, when an admin token is at hand.
    pub fn admin(&self) -> Option<Client> {
        let token = self.admin_token.as_deref()?;
        api_client(&self.http_base, token, self.tls.as_deref()).ok()
    }

    /// The trust this target needs (`None`: the system's roots).
    pub fn tls(&self) -> Option<Arc<ClientTls>> {
        self.tls.clone()
    }

    /// Stops the embedded core (if any) and removes its data.
    pub async fn shutdown(self) {
        if let Some((running, dir)) = self.embedded {
            running.shutdown().await;
            drop(dir);
        }
    }
}

/// A typed API client trusting what the run trusts.
fn api_client(base: &str, token: &str, tls: Option<&ClientTls>) -> Result<Client, String> {
    match tls {
        None => Client::new(base, token).map_err(|e| e.to_string()),
        Some(t) => {
            let http = t.http_client().map_err(|e| e.to_string())?;
            Ok(Client::with_http(http, base, token))
        }
    }
}

/// `ws://…` for `http://…`, `wss://…` for `https://…`.
fn ws_url(base: &str) -> Option<String> {
    if let Some(rest) = base.strip_prefix("http://") {
        Some(format!("ws://{rest}"))
    } else {
        base.strip_prefix("https://")
            .map(|rest| format!("wss://{rest}"))
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Keeps only the credentials of `channels` (`[tenants] channels`; empty:
/// all): the others are blanked, so no driver can use a channel the
/// scenario did not give its tenants. The core has no per-tenant channel
/// switch, so this is where the restriction lives.
pub fn restrict_channels(tenants: &mut [TenantCreated], channels: &[Channel]) {
    if channels.is_empty() {
        return;
    }
    for t in tenants {
        let c = &mut t.channels;
        if !channels.contains(&Channel::Webchat) {
            c.webchat.widget_key.clear();
        }
        if !channels.contains(&Channel::Whatsapp) {
            c.whatsapp.phone_number_id.clear();
            c.whatsapp.app_secret.clear();
            c.whatsapp.verify_token.clear();
        }
        if !channels.contains(&Channel::Email) {
            c.email.address.clear();
            c.email.signing_key.clear();
        }
    }
}

/// The tenants of the run: created now, or the ones in the credentials file.
pub async fn tenants(
    target: &Target,
    spec: &TenantSpec,
    run_id: &str,
) -> Result<Vec<TenantCreated>, ProvisionError> {
    match spec {
        TenantSpec::Existing { tenants, .. } => Ok(tenants.clone()),
        TenantSpec::Provision { count, name_prefix } => {
            let Some(admin) = target.admin() else {
                return Err(ProvisionError::Usage(format!(
                    "the scenario provisions {count} tenant(s): give --admin-token (or C24_ADMIN_TOKEN) for {}",
                    target.http_base
                )));
            };
            let mut out = Vec::with_capacity(*count as usize);
            for i in 0..*count {
                let req = CreateTenant {
                    name: format!("{name_prefix}-{run_id}-{i}"),
                    dpa_signed: true,
                };
                let t = admin.create_tenant(&req).await.map_err(|e| {
                    ProvisionError::Unreachable(format!(
                        "provisioning tenant {} of {count} through POST /admin/v1/tenants: {e}",
                        i + 1
                    ))
                })?;
                out.push(t);
            }
            Ok(out)
        }
    }
}
