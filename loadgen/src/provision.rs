//! The target: an embedded chat core in a temp dir (through
//! `c24_chatcore::start`, its library entry point) or a running one given by
//! URL; and the tenants the traffic goes to, created through the admin API
//! or read from a credentials file.

use c24_api::admin::tenants::{CreateTenant, TenantCreated};
use c24_api::client::Client;

use crate::scenario::{Channel, TenantSpec};

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
}

impl Target {
    /// Starts a chat core on a free loopback port with a fresh temp data dir.
    pub async fn embedded() -> Result<Self, ProvisionError> {
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
        let running = c24_chatcore::start(cfg).await.map_err(|e| {
            ProvisionError::Unreachable(format!("starting the embedded chat core: {e}"))
        })?;
        Ok(Target {
            http_base: running.url(),
            ws_base: running.ws_url(),
            admin_token: Some(running.admin_token().to_string()),
            embedded: Some((running, dir)),
        })
    }

    /// A running core; answers `/healthz` or the run cannot start.
    pub async fn remote(url: &str, admin_token: Option<String>) -> Result<Self, ProvisionError> {
        let base = url.trim_end_matches('/').to_string();
        let ws_base = if let Some(rest) = base.strip_prefix("http://") {
            format!("ws://{rest}")
        } else if let Some(rest) = base.strip_prefix("https://") {
            format!("wss://{rest}")
        } else {
            return Err(ProvisionError::Usage(format!(
                "--target {url}: expected a URL like http://127.0.0.1:8080"
            )));
        };
        let client = Client::new(&base, admin_token.as_deref().unwrap_or(""))
            .map_err(|e| ProvisionError::Usage(format!("--target {url}: {e}")))?;
        let probe = tokio::time::timeout(std::time::Duration::from_secs(5), client.healthz()).await;
        match probe {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(ProvisionError::Unreachable(format!(
                    "target {base} is not reachable: GET /healthz: {e}"
                )));
            }
            Err(_) => {
                return Err(ProvisionError::Unreachable(format!(
                    "target {base} is not reachable: GET /healthz timed out after 5s"
                )));
            }
        }
        Ok(Target {
            http_base: base,
            ws_base,
            admin_token,
            embedded: None,
        })
    }

    /// No chat core at all: a scenario of generic steps whose templates
    /// name their own URLs.
    pub fn none() -> Self {
        Target {
            http_base: String::new(),
            ws_base: String::new(),
            admin_token: None,
            embedded: None,
        }
    }

    /// A target that need not be a c24 core (generic steps only use it as
    /// `{target}`): the URL is checked, not probed.
    pub fn unprobed(url: &str, admin_token: Option<String>) -> Result<Self, ProvisionError> {
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
        })
    }

    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// An admin client, when an admin token is at hand.
    pub fn admin(&self) -> Option<Client> {
        let token = self.admin_token.as_deref()?;
        Client::new(&self.http_base, token).ok()
    }

    /// Stops the embedded core (if any) and removes its data.
    pub async fn shutdown(self) {
        if let Some((running, dir)) = self.embedded {
            running.shutdown().await;
            drop(dir);
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
