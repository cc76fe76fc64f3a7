//! TLS to the agent, from the `LIBPROCESS_SSL_*` variables the Mesos agent passes to its
//! executors (it runs them with its own environment), read the way libprocess reads them
//! for a client socket:
//!
//! - `LIBPROCESS_SSL_ENABLED`: TLS at all (default off). When on, libprocess requires
//!   `LIBPROCESS_SSL_CERT_FILE` and `LIBPROCESS_SSL_KEY_FILE` and exits without them; so
//!   do we. They are presented as the client certificate (an agent with
//!   `LIBPROCESS_SSL_REQUIRE_CERT` asks for one).
//! - `LIBPROCESS_SSL_VERIFY_SERVER_CERT` (older name `LIBPROCESS_SSL_VERIFY_CERT`):
//!   verify the agent's certificate, against `LIBPROCESS_SSL_CA_FILE` and/or
//!   `LIBPROCESS_SSL_CA_DIR`, else the system's roots. Default off, as in libprocess:
//!   encryption without authentication (logged as a warning).
//! - `LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME`: `legacy` (default) or `openssl`; other
//!   values are refused as libprocess refuses them. Either way the name checked is the
//!   host of `MESOS_AGENT_ENDPOINT` (an IP address: the certificate needs it as an IP
//!   SAN; `legacy`'s reverse DNS lookup is not done).
//! - Server-side settings (`REQUIRE_CERT`, `REQUIRE_CLIENT_CERT`, `SUPPORT_DOWNGRADE`,
//!   `VERIFY_IPADD`, ciphers, protocol versions) do not concern a client; they are
//!   accepted and ignored (rustls negotiates TLS 1.2/1.3 with its safe defaults).
//!
//! Every variable may also be spelled with the deprecated `SSL_` prefix; the
//! `LIBPROCESS_SSL_` spelling wins, as in libprocess. Booleans are `true`/`false`/`1`/`0`
//! (stout's flag parsing).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the agent connection needs for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTls {
    pub ca_file: Option<PathBuf>,
    pub ca_dir: Option<PathBuf>,
    /// Verify the agent's certificate and name.
    pub verify: bool,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SslError {
    #[error("{name}={value:?} is not true/false/1/0")]
    Bool { name: String, value: String },
    #[error("LIBPROCESS_SSL_ENABLED is on but {name} is not set (libprocess requires it too)")]
    Missing { name: &'static str },
    #[error(
        "LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME={value:?} is not \"legacy\" or \"openssl\""
    )]
    Scheme { value: String },
}

/// The TLS settings, `None` when TLS is off.
pub fn from_vars(all: &BTreeMap<String, String>) -> Result<Option<AgentTls>, SslError> {
    let get = |key: &str| {
        all.get(&format!("LIBPROCESS_SSL_{key}"))
            .or_else(|| all.get(&format!("SSL_{key}")))
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let flag = |key: &str, default: bool| -> Result<bool, SslError> {
        match get(key).as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(SslError::Bool {
                name: format!("LIBPROCESS_SSL_{key}"),
                value: other.to_string(),
            }),
        }
    };
    if !flag("ENABLED", false)? {
        return Ok(None);
    }
    let verify = match get("VERIFY_SERVER_CERT") {
        Some(_) => flag("VERIFY_SERVER_CERT", false)?,
        None => flag("VERIFY_CERT", false)?,
    };
    if let Some(value) = get("HOSTNAME_VALIDATION_SCHEME") {
        if value != "legacy" && value != "openssl" {
            return Err(SslError::Scheme { value });
        }
    }
    let path = |key: &str| get(key).map(PathBuf::from);
    Ok(Some(AgentTls {
        ca_file: path("CA_FILE"),
        ca_dir: path("CA_DIR"),
        verify,
        cert_file: path("CERT_FILE").ok_or(SslError::Missing {
            name: "LIBPROCESS_SSL_CERT_FILE",
        })?,
        key_file: path("KEY_FILE").ok_or(SslError::Missing {
            name: "LIBPROCESS_SSL_KEY_FILE",
        })?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KEYS: [(&str, &str); 2] = [
        ("LIBPROCESS_SSL_CERT_FILE", "/etc/mesos/cert.pem"),
        ("LIBPROCESS_SSL_KEY_FILE", "/etc/mesos/key.pem"),
    ];

    fn enabled(extra: &[(&str, &str)]) -> Result<Option<AgentTls>, SslError> {
        let mut v = vec![("LIBPROCESS_SSL_ENABLED", "true")];
        v.extend(KEYS);
        v.extend(extra);
        from_vars(&vars(&v))
    }

    #[test]
    fn off_unless_enabled() {
        assert_eq!(from_vars(&vars(&KEYS)), Ok(None));
        let mut v = vec![("LIBPROCESS_SSL_ENABLED", "0")];
        v.extend(KEYS);
        assert_eq!(from_vars(&vars(&v)), Ok(None));
    }

    #[test]
    fn enabled_without_verification_by_default_like_libprocess() {
        let tls = enabled(&[]).unwrap().unwrap();
        assert!(!tls.verify);
        assert_eq!(tls.cert_file, PathBuf::from("/etc/mesos/cert.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/etc/mesos/key.pem"));
        assert_eq!((tls.ca_file, tls.ca_dir), (None, None));
    }

    #[test]
    fn verify_and_ca_paths() {
        let tls = enabled(&[
            ("LIBPROCESS_SSL_VERIFY_CERT", "1"),
            ("LIBPROCESS_SSL_CA_FILE", "/ca.pem"),
            ("LIBPROCESS_SSL_CA_DIR", "/cas"),
        ])
        .unwrap()
        .unwrap();
        assert!(tls.verify);
        assert_eq!(tls.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(tls.ca_dir, Some(PathBuf::from("/cas")));
        // The newer name wins over the older one.
        let tls = enabled(&[
            ("LIBPROCESS_SSL_VERIFY_CERT", "true"),
            ("LIBPROCESS_SSL_VERIFY_SERVER_CERT", "false"),
        ])
        .unwrap()
        .unwrap();
        assert!(!tls.verify);
    }

    #[test]
    fn deprecated_ssl_prefix_loses_to_libprocess_ssl() {
        let v = vars(&[
            ("SSL_ENABLED", "true"),
            ("SSL_CERT_FILE", "/old.pem"),
            ("LIBPROCESS_SSL_CERT_FILE", "/new.pem"),
            ("SSL_KEY_FILE", "/key.pem"),
            ("SSL_VERIFY_CERT", "true"),
        ]);
        let tls = from_vars(&v).unwrap().unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/new.pem"));
        assert_eq!(tls.key_file, PathBuf::from("/key.pem"));
        assert!(tls.verify);
    }

    #[test]
    fn server_side_settings_are_accepted() {
        let tls = enabled(&[
            ("LIBPROCESS_SSL_REQUIRE_CERT", "true"),
            ("LIBPROCESS_SSL_SUPPORT_DOWNGRADE", "true"),
            ("LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME", "openssl"),
        ]);
        assert!(tls.unwrap().is_some());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from_vars(&vars(&[("LIBPROCESS_SSL_ENABLED", "yes")])).unwrap_err();
        assert!(err.to_string().contains("LIBPROCESS_SSL_ENABLED"), "{err}");
        let err = enabled(&[("LIBPROCESS_SSL_VERIFY_SERVER_CERT", "on")]).unwrap_err();
        assert!(err.to_string().contains("VERIFY_SERVER_CERT"), "{err}");
        let err = enabled(&[("LIBPROCESS_SSL_HOSTNAME_VALIDATION_SCHEME", "dns")]).unwrap_err();
        assert_eq!(
            err,
            SslError::Scheme {
                value: "dns".into()
            }
        );
        let err = from_vars(&vars(&[
            ("LIBPROCESS_SSL_ENABLED", "1"),
            ("LIBPROCESS_SSL_CERT_FILE", "/c.pem"),
        ]))
        .unwrap_err();
        assert_eq!(
            err,
            SslError::Missing {
                name: "LIBPROCESS_SSL_KEY_FILE"
            }
        );
    }
}
