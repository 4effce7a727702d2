//! TLS toward `https://` and `wss://` targets: which certificates the load
//! generator trusts (the system's roots, plus `--ca-file PEM` for a core with
//! its own or a development certificate; `--insecure` trusts anything, only
//! when asked), as one rustls config shared by the web-chat sockets and the
//! HTTP drivers so both sides of a run trust the same roots.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

/// What to trust, as asked on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trust anchors (PEM files, each one or more certificates).
    pub ca_files: Vec<PathBuf>,
    /// Accept any server certificate (never the default).
    pub insecure: bool,
}

/// The client side of TLS for one run: a rustls config for the web-chat
/// sockets and the same trust for `reqwest`.
#[derive(Debug, Clone)]
pub struct ClientTls {
    pub config: Arc<ClientConfig>,
    /// The `--ca-file` certificates, DER, for `reqwest`.
    extra_roots: Vec<CertificateDer<'static>>,
    insecure: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("--ca-file {path}: {message}")]
    CaFile { path: String, message: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The certificates in one PEM file; a file without any is an error.
pub fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    c24_chatcore::tls::read_pem_certs(path).map_err(|message| TlsError::CaFile {
        path: path.display().to_string(),
        message,
    })
}

impl ClientTls {
    /// Builds the trust for `opts`: system roots plus the CA files.
    pub fn new(opts: &TlsOptions) -> Result<Self, TlsError> {
        let mut extra_roots = Vec::new();
        for p in &opts.ca_files {
            extra_roots.extend(read_pem(p)?);
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let config = if opts.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            if !native.errors.is_empty() {
                tracing::debug!(errors = ?native.errors, "some system root certificates did not load");
            }
            roots.add_parsable_certificates(native.certs);
            for (i, c) in extra_roots.iter().enumerate() {
                roots.add(c.clone()).map_err(|e| TlsError::CaFile {
                    path: opts
                        .ca_files
                        .first()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    message: format!("certificate {} is not a usable trust anchor: {e}", i + 1),
                })?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        Ok(ClientTls {
            config: Arc::new(config),
            extra_roots,
            insecure: opts.insecure,
        })
    }

    /// The system roots only (what `wss://` uses when nothing was asked);
    /// `None` when rustls cannot be set up at all.
    pub fn system() -> Option<Arc<ClientConfig>> {
        static SYSTEM: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                ClientTls::new(&TlsOptions::default())
                    .ok()
                    .map(|t| t.config)
            })
            .clone()
    }

    /// The same trust for a `reqwest` client.
    pub fn apply(&self, b: reqwest::ClientBuilder) -> Result<reqwest::ClientBuilder, TlsError> {
        let mut certs = Vec::with_capacity(self.extra_roots.len());
        for c in &self.extra_roots {
            certs.push(
                reqwest::Certificate::from_der(c.as_ref())
                    .map_err(|e| TlsError::Setup(e.to_string()))?,
            );
        }
        Ok(b.tls_certs_merge(certs)
            .tls_danger_accept_invalid_certs(self.insecure))
    }

    /// A `reqwest` client with this trust.
    pub fn http_client(&self) -> Result<reqwest::Client, TlsError> {
        self.apply(reqwest::Client::builder())?
            .build()
            .map_err(|e| TlsError::Setup(e.to_string()))
    }
}

/// `--insecure`: any certificate is accepted; handshake signatures are still
/// checked (the peer holds the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("empty.pem");
        std::fs::write(&p, "not a certificate\n").unwrap();
        let e = ClientTls::new(&TlsOptions {
            ca_files: vec![p.clone()],
            insecure: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("empty.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = ClientTls::new(&TlsOptions {
            ca_files: vec![missing],
            insecure: false,
        })
        .unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
