//! TLS for the listener (rustls with aws-lc-rs; TLS 1.2 and 1.3 only).

use std::path::Path;

use axum_server::tls_rustls::RustlsConfig;

use crate::StartError;
use crate::config::TlsConfig;

/// File the development certificate is written to, inside the data dir.
pub const DEV_CERT_FILE: &str = "dev-cert.pem";

/// The rustls config for `tls`, or `None` for plain HTTP.
pub async fn server_config(
    tls: &TlsConfig,
    data_dir: &Path,
) -> Result<Option<RustlsConfig>, StartError> {
    // Several embedded cores in one process: only the first install wins, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match tls {
        TlsConfig::Off => Ok(None),
        TlsConfig::Files { cert, key } => RustlsConfig::from_pem_file(cert, key)
            .await
            .map(Some)
            .map_err(|e| StartError::Tls(format!("loading {}: {e}", cert.display()))),
        TlsConfig::SelfSigned => {
            let ck = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ])
            .map_err(|e| StartError::Tls(e.to_string()))?;
            let cert_pem = ck.cert.pem();
            let path = data_dir.join(DEV_CERT_FILE);
            std::fs::write(&path, &cert_pem)
                .map_err(|e| StartError::Tls(format!("writing {}: {e}", path.display())))?;
            RustlsConfig::from_pem(
                cert_pem.into_bytes(),
                ck.signing_key.serialize_pem().into_bytes(),
            )
            .await
            .map(Some)
            .map_err(|e| StartError::Tls(e.to_string()))
        }
    }
}
