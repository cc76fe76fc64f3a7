//! rustls configurations from PEM files.
//!
//! Clients trust the CA file and/or directory they are given, else the system's roots
//! (`/etc/ssl/certs`); `verify: false` accepts any server certificate (what Mesos'
//! `LIBPROCESS_SSL_VERIFY_CERT=false` means: encryption without authentication).
//! Servers present a certificate chain and key, and optionally require client
//! certificates signed by a CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{what} {path} holds no PEM {kind}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        kind: &'static str,
    },
    #[error("no trusted CA certificate: none in the CA file/dir and none in the system store")]
    NoRoots,
    #[error("bad TLS configuration")]
    Rustls(#[from] rustls::Error),
    #[error("bad client-certificate verifier")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// What a client trusts and presents.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM file of trusted CA certificates.
    pub ca_file: Option<PathBuf>,
    /// Directory of PEM files of trusted CA certificates (every `*.pem`/`*.crt`).
    pub ca_dir: Option<PathBuf>,
    /// Verify the server's certificate and name (true unless explicitly turned off).
    pub verify: bool,
    /// Client certificate chain and key, for servers that require one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

impl ClientTls {
    /// Verify against the system's roots; no client certificate.
    pub fn system() -> ClientTls {
        ClientTls {
            verify: true,
            ..ClientTls::default()
        }
    }

    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if self.verify {
            builder.with_root_certificates(self.roots()?)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
        };
        let config = match (&self.cert_file, &self.key_file) {
            (Some(c), Some(k)) => {
                builder.with_client_auth_cert(certs(c, "client certificate")?, key(k)?)?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        if let Some(f) = &self.ca_file {
            for c in certs(f, "CA file")? {
                roots.add(c)?;
            }
        }
        if let Some(d) = &self.ca_dir {
            let entries = std::fs::read_dir(d).map_err(|err| TlsError::Read {
                what: "CA directory",
                path: d.clone(),
                err,
            })?;
            for e in entries.flatten() {
                let p = e.path();
                let pem = matches!(p.extension().and_then(|x| x.to_str()), Some("pem" | "crt"));
                if pem && p.is_file() {
                    for c in certs(&p, "CA file").unwrap_or_default() {
                        let _ = roots.add(c);
                    }
                }
            }
        }
        if self.ca_file.is_none() && self.ca_dir.is_none() {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        Ok(roots)
    }
}

/// What a server presents and whom it requires.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Require client certificates signed by this CA.
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTls {
    pub fn config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in certs(ca, "client CA file")? {
                    roots.add(c)?;
                }
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()?;
                builder.with_client_cert_verifier(v)
            }
            None => builder.with_no_client_auth(),
        };
        let config = builder
            .with_single_cert(certs(&self.cert_file, "certificate")?, key(&self.key_file)?)?;
        Ok(Arc::new(config))
    }
}

/// ring, not aws-lc-rs: it builds for the static musl berth-init with no cmake or C
/// toolchain of its own. rustls 0.23.48 deprecates it for lacking post-quantum key
/// exchange; the classical suites it offers are what every peer of berth speaks.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        what,
        path: path.to_path_buf(),
        err,
    })
}

fn certs(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, what)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|err| TlsError::Read {
            what,
            path: path.to_path_buf(),
            err,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            kind: "certificate",
        });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "key file";
    let pem = read(path, what)?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|err| TlsError::Read {
            what,
            path: path.to_path_buf(),
            err,
        })?
        .ok_or_else(|| TlsError::Empty {
            what,
            path: path.to_path_buf(),
            kind: "private key",
        })
}

/// Accepts any server certificate (signatures on the handshake are still checked, so the
/// session is encrypted to whoever holds the key it presented).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
