//! The `login` key: passwordless SSH login with certificates from the company's CA.
//!
//! ```yaml
//! login:
//!   ca: /run/berth/login/user_ca.pub    # the CA public keys: a file the executor mounts
//!                                       # (or https://ca.example.com/user_ca.pub)
//!   revoked: /run/berth/login/krl       # optional KRL (`ssh-keygen -k`) or key list
//!   refresh: 5m                         # how often both are fetched again (default 5m)
//!   port: 22                            # default 22
//!   required: false                     # no sshd / no CA keys -> fail the task? (default no)
//!   sshd: /usr/sbin/sshd                # default
//!   host_certificate: https://ca.example.com/sign-host  # optional: the host CA's signing
//!                                       # endpoint (init POSTs its fresh host public key)
//!   users:
//!     work: {}                          # principals default to the app id's prefixes
//!     admin: {principals: [ops]}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::duration::Dur;
use super::service::Port;

/// Default `refresh`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// Default `port`.
pub const DEFAULT_PORT: u16 = 22;
/// Default `sshd`.
pub const DEFAULT_SSHD: &str = "/usr/sbin/sshd";

/// Where CA keys or the KRL come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// An absolute path inside the container (the executor mounts it).
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl Source {
    /// Parses an absolute path or an http(s) URL.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.starts_with("https://") || s.starts_with("http://") {
            if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "bad URL {s:?}: it has whitespace or control characters"
                ));
            }
            return Ok(Source::Url(s.to_string()));
        }
        if s.starts_with('/') && !s.contains('\0') {
            return Ok(Source::File(PathBuf::from(s)));
        }
        Err(format!(
            "bad source {s:?}: valid sources are an absolute path or an http:// or https:// URL"
        ))
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Url(u) => f.write_str(u),
        }
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Source::parse(&s).map_err(de::Error::custom)
    }
}

/// A login name sshd will accept: POSIX portable, 1-32 bytes, `[a-z_][a-z0-9_-]*`.
pub fn valid_user(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=32).contains(&b.len())
        && (b[0].is_ascii_lowercase() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// A principal: one line of an `AuthorizedPrincipalsFile`, 1-256 printable bytes without
/// spaces, commas (the certificate's list separator) or `#`.
pub fn valid_principal(p: &str) -> bool {
    (1..=256).contains(&p.len())
        && p.bytes()
            .all(|c| c.is_ascii_graphic() && c != b',' && c != b'#')
}

/// One user who may log in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginUser {
    /// Principals a certificate must name; default: every prefix of the Marathon app id.
    pub principals: Option<Vec<String>>,
}

/// The `login` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSpec {
    /// The user CA public keys (one a line; two during a rotation).
    pub ca: Source,
    /// Revoked keys: a KRL or a public key list.
    pub revoked: Option<Source>,
    /// Refresh interval of `ca` and `revoked`.
    pub refresh: Option<Dur>,
    /// The port sshd listens on.
    pub port: Option<Port>,
    /// Whether a login failure (no sshd, no CA keys) fails the task.
    #[serde(default)]
    pub required: bool,
    /// The image's sshd.
    pub sshd: Option<PathBuf>,
    /// The host CA's signing endpoint: init POSTs its host public key and installs the
    /// certificate it answers, so clients trusting the host CA need no TOFU prompt.
    pub host_certificate: Option<Source>,
    /// Users and their principals.
    pub users: BTreeMap<String, LoginUser>,
}

impl LoginSpec {
    /// The refresh interval.
    pub fn refresh(&self) -> Duration {
        self.refresh.map_or(DEFAULT_REFRESH, |d| d.0)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port.map_or(DEFAULT_PORT, |p| p.0)
    }

    /// The sshd binary.
    pub fn sshd(&self) -> PathBuf {
        self.sshd
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SSHD))
    }

    /// Checks what serde cannot: names, principals, a sane interval. The message names the
    /// key below `login`.
    pub fn check(&self) -> Result<(), (Vec<String>, String)> {
        if self.users.is_empty() {
            return Err((
                vec!["users".into()],
                "login.users: no users; name at least one, e.g. `users: {work: {}}`".into(),
            ));
        }
        for (name, u) in &self.users {
            if !valid_user(name) {
                return Err((vec!["users".into()], format!("login.users: bad user name {name:?}: valid names are 1-32 of a-z, 0-9, '_', '-', starting with a letter or '_'")));
            }
            for p in u.principals.iter().flatten() {
                if !valid_principal(p) {
                    return Err((vec!["users".into(), name.clone(), "principals".into()], format!("login.users.{name}.principals: bad principal {p:?}: valid principals are 1-256 printable characters without spaces, ',' or '#'")));
                }
            }
        }
        if self.refresh() < Duration::from_secs(1) {
            return Err((
                vec!["refresh".into()],
                "login.refresh: below 1s; valid intervals are 1s or more".into(),
            ));
        }
        if let Some(Source::File(p)) = &self.host_certificate {
            return Err((
                vec!["host_certificate".into()],
                format!("login.host_certificate: {} is a file; it must be the http:// or https:// URL of the host CA's signing endpoint", p.display()),
            ));
        }
        if let Some(p) = &self.sshd {
            if !p.is_absolute() {
                return Err((
                    vec!["sshd".into()],
                    format!("login.sshd: {} is not an absolute path", p.display()),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        assert_eq!(
            Source::parse("/run/berth/ca.pub").unwrap(),
            Source::File("/run/berth/ca.pub".into())
        );
        assert!(matches!(
            Source::parse("https://ca/x").unwrap(),
            Source::Url(_)
        ));
        assert!(Source::parse("ca.pub").is_err());
        assert!(Source::parse("ftp://x").is_err());
        assert!(Source::parse("http://a b").is_err());
    }

    #[test]
    fn names() {
        assert!(valid_user("work"));
        assert!(valid_user("_svc-1"));
        assert!(!valid_user("Work"));
        assert!(!valid_user("1x"));
        assert!(!valid_user("a b"));
        assert!(!valid_user(&"a".repeat(33)));
        assert!(valid_principal("team/app"));
        assert!(!valid_principal("a,b"));
        assert!(!valid_principal("a b"));
        assert!(!valid_principal("#x"));
        assert!(!valid_principal(""));
    }

    #[test]
    fn defaults_and_checks() {
        let s: LoginSpec = serde_yaml::from_str("ca: /ca.pub\nusers: {work: {}}\n").unwrap();
        assert_eq!(s.port(), 22);
        assert_eq!(s.refresh(), DEFAULT_REFRESH);
        assert!(!s.required);
        assert!(s.check().is_ok());
        let e: LoginSpec = serde_yaml::from_str("ca: /ca.pub\nusers: {}\n").unwrap();
        assert!(e.check().unwrap_err().1.contains("no users"));
        let bad: LoginSpec =
            serde_yaml::from_str("ca: /ca.pub\nusers: {work: {principals: [\"a,b\"]}}\n").unwrap();
        assert!(bad.check().unwrap_err().1.contains("principals"));
        assert!(serde_yaml::from_str::<LoginSpec>("ca: /c\nusers: {}\npasswd: yes\n").is_err());
        let file: LoginSpec =
            serde_yaml::from_str("ca: /ca.pub\nusers: {work: {}}\nhost_certificate: /sign\n")
                .unwrap();
        assert!(file.check().unwrap_err().1.contains("signing endpoint"));
        let url: LoginSpec = serde_yaml::from_str(
            "ca: /ca.pub\nusers: {work: {}}\nhost_certificate: https://ca/sign\n",
        )
        .unwrap();
        assert!(url.check().is_ok());
    }
}

#[cfg(test)]
mod spec_tests {
    use crate::spec::{AppSpec, SpecError};
    use std::path::Path;

    #[test]
    fn errors_name_the_key_and_line() {
        let text = "services:\n  a: {command: [x]}\nlogin:\n  ca: /ca.pub\n  users:\n    Bad: {}\n";
        match AppSpec::parse(text, Path::new("/app.yaml")) {
            Err(SpecError::Invalid { line, message, .. }) => {
                assert!(message.contains("login.users: bad user name"), "{message}");
                assert_eq!(line, 5, "{message}");
            }
            other => panic!("{other:?}"),
        }
        let unknown = "login:\n  ca: /ca.pub\n  users: {work: {}}\n  password: yes\n";
        let e = AppSpec::parse(unknown, Path::new("/app.yaml")).unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
        let ok = AppSpec::parse(
            "login:\n  ca: /ca.pub\n  users: {work: {}}\n",
            Path::new("/a"),
        );
        assert_eq!(ok.unwrap().login.unwrap().port(), 22);
    }
}
