//! TLS for the listener (rustls with aws-lc-rs; TLS 1.2 and 1.3 only),
//! and the client trust for outgoing connections (PostgreSQL's).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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

/// The certificates in one PEM file; a file without any is an error (the
/// message says what is wrong, the caller names the file).
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e:?}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// A client config trusting the system's roots plus the certificates in
/// `ca_files` (TLS 1.2 and 1.3, aws-lc-rs): for outgoing connections such
/// as PostgreSQL's.
pub fn client_config(ca_files: &[PathBuf]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates did not load");
    }
    roots.add_parsable_certificates(native.certs);
    for path in ca_files {
        let certs = read_pem_certs(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for (i, c) in certs.into_iter().enumerate() {
            roots.add(c).map_err(|e| {
                format!(
                    "{}: certificate {} is not a usable trust anchor: {e}",
                    path.display(),
                    i + 1
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
