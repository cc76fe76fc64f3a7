//! Marathon access as a user writes it (a `[marathon]` TOML section, shared by the LVS
//! director and the database-auth service): the URLs of the Marathon instances (tried in
//! order, the next one when one fails), HTTP basic-auth credentials from a file, TLS, and
//! timeouts. [`Raw`] is the strict serde shape; [`Raw::resolve`] checks it, reads the
//! password file, and names the offending field on error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use berth_http::tls::ClientTls;
use berth_http::url::Url;
use serde::Deserialize;

/// A bad value, by field name (`url[1]`, `password_file`, ...) relative to the section.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {why}")]
pub struct Invalid {
    pub field: String,
    pub why: String,
}

/// One URL or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

/// The `[marathon]` section as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// `"http://m1:8080"` or `["https://m1:8443", "https://m2:8443"]`.
    pub url: Urls,
    pub user: Option<String>,
    /// A file holding the password on its first line (keep it mode 0600).
    pub password_file: Option<PathBuf>,
    /// TLS: trusted CA (file or directory of PEM files; default: the system's roots).
    pub ca_file: Option<PathBuf>,
    pub ca_dir: Option<PathBuf>,
    /// TLS: `false` skips verifying Marathon's certificate (tests only).
    #[serde(default = "yes")]
    pub verify: bool,
    /// TLS client certificate and key, if Marathon requires one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default = "default_connect")]
    pub connect_timeout_ms: u64,
    /// A whole `GET` answer (e.g. an app's tasks) must arrive within this.
    #[serde(default = "default_request")]
    pub request_timeout_ms: u64,
    /// The event stream is reopened after this long without a byte (Marathon sends
    /// keep-alives much more often).
    #[serde(default = "default_idle")]
    pub idle_timeout_ms: u64,
    /// Reconnect backoff: first wait, doubling up to the max.
    #[serde(default = "default_retry_min")]
    pub retry_min_ms: u64,
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
    /// A full listing of the apps' tasks this often, besides the event stream.
    #[serde(default = "default_reconcile")]
    pub reconcile_secs: u64,
}

fn yes() -> bool {
    true
}
fn default_connect() -> u64 {
    5_000
}
fn default_request() -> u64 {
    30_000
}
fn default_idle() -> u64 {
    60_000
}
fn default_retry_min() -> u64 {
    200
}
fn default_retry_max() -> u64 {
    10_000
}
fn default_reconcile() -> u64 {
    30
}

/// HTTP basic-auth credentials. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// The `Authorization` header value.
    pub fn header(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.user, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Reconnect backoff bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// Checked Marathon access.
#[derive(Debug, Clone)]
pub struct Config {
    /// At least one; tried in order.
    pub urls: Vec<Url>,
    pub auth: Option<Credentials>,
    /// TLS settings for `https://` URLs; `None` = the system's roots.
    pub tls: Option<ClientTls>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub idle_timeout: Duration,
    pub backoff: Backoff,
    pub reconcile: Duration,
}

impl Config {
    /// Defaults for one URL without auth (tests, programs that build the config).
    pub fn new(urls: Vec<Url>) -> Config {
        Config {
            urls,
            auth: None,
            tls: None,
            connect_timeout: Duration::from_millis(default_connect()),
            request_timeout: Duration::from_millis(default_request()),
            idle_timeout: Duration::from_millis(default_idle()),
            backoff: Backoff {
                min: Duration::from_millis(default_retry_min()),
                max: Duration::from_millis(default_retry_max()),
            },
            reconcile: Duration::from_secs(default_reconcile()),
        }
    }
}

impl Raw {
    /// Check the values and read the password file.
    pub fn resolve(&self) -> Result<Config, Invalid> {
        let bad = |field: &str, why: String| Invalid {
            field: field.into(),
            why,
        };
        let list: Vec<(String, &str)> = match &self.url {
            Urls::One(u) => vec![("url".into(), u.as_str())],
            Urls::Many(v) => v
                .iter()
                .enumerate()
                .map(|(i, u)| (format!("url[{i}]"), u.as_str()))
                .collect(),
        };
        if list.is_empty() {
            return Err(bad("url", "at least one URL is needed".into()));
        }
        let mut urls = Vec::new();
        for (field, u) in list {
            let url = Url::parse(u).map_err(|e| bad(&field, e.to_string()))?;
            if url.path.contains('?') {
                return Err(bad(&field, format!("{u:?}: no query string, please")));
            }
            urls.push(url);
        }
        let auth = match (&self.user, &self.password_file) {
            (None, None) => None,
            (Some(user), Some(file)) => {
                if user.is_empty() || user.contains(':') {
                    return Err(bad("user", "must be non-empty and without ':'".into()));
                }
                let text = std::fs::read_to_string(file).map_err(|e| {
                    bad(
                        "password_file",
                        format!("cannot read {}: {e}", file.display()),
                    )
                })?;
                let password = text.lines().next().unwrap_or("").to_string();
                if password.is_empty() {
                    return Err(bad(
                        "password_file",
                        format!("{} holds no password", file.display()),
                    ));
                }
                Some(Credentials {
                    user: user.clone(),
                    password,
                })
            }
            _ => return Err(bad("user", "user and password_file go together".into())),
        };
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(bad(
                "cert_file",
                "cert_file and key_file go together".into(),
            ));
        }
        let tls = (self.ca_file.is_some()
            || self.ca_dir.is_some()
            || !self.verify
            || self.cert_file.is_some())
        .then(|| ClientTls {
            ca_file: self.ca_file.clone(),
            ca_dir: self.ca_dir.clone(),
            verify: self.verify,
            cert_file: self.cert_file.clone(),
            key_file: self.key_file.clone(),
        });
        let ms = |field: &str, v: u64| {
            if v == 0 {
                Err(bad(field, "must be at least 1".into()))
            } else {
                Ok(Duration::from_millis(v))
            }
        };
        let backoff = Backoff {
            min: ms("retry_min_ms", self.retry_min_ms)?,
            max: ms("retry_max_ms", self.retry_max_ms)?,
        };
        if backoff.max < backoff.min {
            return Err(bad("retry_max_ms", "must not be below retry_min_ms".into()));
        }
        Ok(Config {
            urls,
            auth,
            tls,
            connect_timeout: ms("connect_timeout_ms", self.connect_timeout_ms)?,
            request_timeout: ms("request_timeout_ms", self.request_timeout_ms)?,
            idle_timeout: ms("idle_timeout_ms", self.idle_timeout_ms)?,
            backoff,
            reconcile: ms("reconcile_secs", self.reconcile_secs)? * 1000,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Result<Raw, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn one_url_or_many_and_the_password_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let c = raw(&format!(
            "url = [\"http://m1:8080\", \"https://m2:8443/marathon\"]\nuser = \"lvs\"\n\
             password_file = {:?}\nidle_timeout_ms = 500\n",
            pw.display()
        ))
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(c.urls.len(), 2);
        assert_eq!(c.urls[1].path, "/marathon");
        assert_eq!(c.idle_timeout, Duration::from_millis(500));
        assert_eq!(c.reconcile, Duration::from_secs(30));
        let a = c.auth.unwrap();
        assert_eq!(a.header(), "Basic bHZzOnMzY3JldA==");
        assert!(!format!("{a:?}").contains("s3cret"));
        assert!(c.tls.is_none());

        let c = raw("url = \"https://m\"\nverify = false\n")
            .unwrap()
            .resolve()
            .unwrap();
        assert!(c.tls.is_some_and(|t| !t.verify));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            ("url = []", "url"),
            ("url = [\"http://a\", \"ftp://b\"]", "url[1]"),
            ("url = \"http://a\"\nuser = \"u\"", "user"),
            (
                "url = \"http://a\"\nuser = \"u\"\npassword_file = \"/nonexistent/pw\"",
                "password_file",
            ),
            ("url = \"http://a\"\nretry_min_ms = 0", "retry_min_ms"),
            (
                "url = \"http://a\"\nretry_min_ms = 500\nretry_max_ms = 100",
                "retry_max_ms",
            ),
            ("url = \"http://a\"\ncert_file = \"/c\"", "cert_file"),
        ];
        for (text, field) in cases {
            let e = raw(text).unwrap().resolve().unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        assert!(raw("url = \"http://a\"\nusr = \"u\"")
            .unwrap_err()
            .to_string()
            .contains("unknown field `usr`"));
    }
}
