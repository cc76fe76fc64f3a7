//! Certificates for a TLS agent double, made with rcgen in a temporary directory: a CA,
//! the agent's certificate for 127.0.0.1 (an IP SAN: executors verify the host of
//! MESOS_AGENT_ENDPOINT), an executor client certificate signed by the same CA, and a
//! second, unrelated CA (a "wrong CA" for the executor to trust).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_http::tls::ServerTls;

/// The PEM files (removed with the directory).
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub agent_cert: PathBuf,
    pub agent_key: PathBuf,
    pub executor_cert: PathBuf,
    pub executor_key: PathBuf,
    pub wrong_ca: PathBuf,
}

/// A self-signed test CA named `name`, with its key.
pub fn new_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    let key = rcgen::KeyPair::generate().expect("key");
    let ca = params.self_signed(&key).expect("ca");
    (ca, key)
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("berth-pki-")
            .tempdir()
            .expect("pki dir");
        let w = |name: &str, pem: String| {
            let p = dir.path().join(name);
            std::fs::write(&p, pem).expect("write pem");
            p
        };
        let (ca, ca_key) = new_ca("berth test agent CA");
        let leaf = |names: Vec<String>| {
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(names)
                .expect("params")
                .signed_by(&key, &ca, &ca_key)
                .expect("sign");
            (cert.pem(), key.serialize_pem())
        };
        let (agent_cert, agent_key) = leaf(vec!["127.0.0.1".into()]);
        let (exec_cert, exec_key) = leaf(vec!["executor.local".into()]);
        let (other, _) = new_ca("some other CA");
        Pki {
            ca: w("ca.pem", ca.pem()),
            agent_cert: w("agent.pem", agent_cert),
            agent_key: w("agent-key.pem", agent_key),
            executor_cert: w("executor.pem", exec_cert),
            executor_key: w("executor-key.pem", exec_key),
            wrong_ca: w("wrong-ca.pem", other.pem()),
            _dir: dir,
        }
    }

    /// The agent's server config; like an agent with `LIBPROCESS_SSL_REQUIRE_CERT=true`
    /// it requires a client certificate signed by the CA.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        ServerTls {
            cert_file: self.agent_cert.clone(),
            key_file: self.agent_key.clone(),
            client_ca_file: Some(self.ca.clone()),
        }
        .config()
        .expect("server TLS config")
    }

    /// The `LIBPROCESS_SSL_*` environment an agent running with TLS passes on to its
    /// executors (its own), trusting `ca` and verifying the agent's certificate.
    pub fn executor_env(&self, ca: &Path) -> Vec<(String, String)> {
        [
            ("LIBPROCESS_SSL_ENABLED", "true"),
            ("LIBPROCESS_SSL_VERIFY_CERT", "true"),
            ("LIBPROCESS_SSL_REQUIRE_CERT", "true"),
            ("LIBPROCESS_SSL_CA_FILE", &ca.display().to_string()),
            (
                "LIBPROCESS_SSL_CERT_FILE",
                &self.executor_cert.display().to_string(),
            ),
            (
                "LIBPROCESS_SSL_KEY_FILE",
                &self.executor_key.display().to_string(),
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}
