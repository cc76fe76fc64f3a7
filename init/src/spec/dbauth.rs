//! The `dbauth:` section: before any service starts, ask `berth-agent dbauth` for database
//! credentials and write them to a file only the service's user can read; any failure
//! makes init exit (agent/DBAUTH.md).
//!
//! ```yaml
//! dbauth:
//!   url: http://10.0.0.2:9380          # the dbauth service
//!   databases: [shop]                  # what this app needs (dbauth's table decides)
//!   credentials: /run/secrets/db.cnf   # written mode 0600 (my.cnf [client] format)
//!   user: app                          # owner of that file (default: root)
//!   deadline: 30s                      # retries of an unreachable service end here (default 30s)
//!   ca_file: /etc/berth/dbauth-ca.pem  # for an https:// url: the CA to trust (default: the system's)
//! ```
//!
//! The app id is `MARATHON_APP_ID` (set by Marathon); the caller's address is the
//! container's own, as dbauth sees the connection.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;

/// Default `deadline`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The `dbauth` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbAuthSpec {
    /// The service's base URL (`http://host:port`).
    pub url: String,
    /// Databases wanted.
    pub databases: Vec<String>,
    /// Where the credentials go (absolute).
    pub credentials: PathBuf,
    /// The file's owner (default root).
    pub user: Option<String>,
    deadline: Option<Dur>,
    /// For an `https://` url: the CA certificates (PEM) to verify the service against,
    /// instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl DbAuthSpec {
    /// The deadline (default [`DEFAULT_DEADLINE`]).
    pub fn deadline(&self) -> Duration {
        self.deadline.map_or(DEFAULT_DEADLINE, |d| d.0)
    }

    /// Checks what serde cannot: (key, message) of the first problem.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let rest = self
            .url
            .strip_prefix("http://")
            .or_else(|| self.url.strip_prefix("https://"));
        if !rest.is_some_and(|r| {
            let r = r.trim_end_matches('/');
            !r.is_empty() && !r.contains(['/', '?', '#', '@']) && !r.contains(char::is_whitespace)
        }) {
            return Err((
                "url",
                format!("bad URL {:?}: expected http://HOST:PORT", self.url),
            ));
        }
        if self.databases.is_empty() {
            return Err(("databases", "name at least one database".into()));
        }
        for d in &self.databases {
            let ok = !d.is_empty()
                && d.len() <= 64
                && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !d.as_bytes()[0].is_ascii_digit();
            if !ok {
                return Err((
                    "databases",
                    format!(
                        "bad database name {d:?}: 1-64 of A-Z a-z 0-9 _, not starting with a digit"
                    ),
                ));
            }
        }
        if !self.credentials.is_absolute() || self.credentials.file_name().is_none() {
            return Err(("credentials", "must be an absolute file path".into()));
        }
        if let Some(ca) = &self.ca_file {
            if !self.url.starts_with("https://") {
                return Err(("ca_file", "only for an https:// url".into()));
            }
            if !ca.is_absolute() {
                return Err(("ca_file", "must be an absolute file path".into()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<DbAuthSpec, String> {
        let s: DbAuthSpec = serde_yaml::from_str(y).map_err(|e| e.to_string())?;
        s.check().map_err(|(k, m)| format!("{k}: {m}"))?;
        Ok(s)
    }

    #[test]
    fn good_and_bad() {
        let s = parse("url: http://10.0.0.2:9380\ndatabases: [shop]\ncredentials: /run/db.cnf\ndeadline: 5s\n").unwrap();
        assert_eq!(s.deadline(), Duration::from_secs(5));
        assert_eq!(s.user, None);
        for (y, want) in [
            (
                "url: ftp://x\ndatabases: [a]\ncredentials: /a\n",
                "url: bad URL",
            ),
            (
                "url: http://x:1\ndatabases: []\ncredentials: /a\n",
                "at least one",
            ),
            (
                "url: http://x:1\ndatabases: [\"a;b\"]\ncredentials: /a\n",
                "bad database name",
            ),
            (
                "url: http://x:1\ndatabases: [a]\ncredentials: rel\n",
                "absolute",
            ),
            (
                "url: http://x:1\ndatabases: [a]\ncredentials: /a\nip: 1.2.3.4\n",
                "unknown field",
            ),
            (
                "url: http://x:1\ndatabases: [a]\ncredentials: /a\nca_file: /ca.pem\n",
                "ca_file: only for an https",
            ),
        ] {
            let e = parse(y).unwrap_err();
            assert!(e.contains(want), "{y}: {e}");
        }
    }

    #[test]
    fn in_an_app_spec() {
        let y = "services:\n  web:\n    command: [/bin/true]\ndbauth:\n  url: http://10.0.0.2:9380\n  databases: [shop]\n  credentials: /run/db.cnf\n";
        let spec = crate::spec::AppSpec::parse(y, std::path::Path::new("app.yaml")).unwrap();
        assert_eq!(
            spec.dbauth.map(|d| d.databases),
            Some(vec!["shop".to_string()])
        );
        let e = crate::spec::AppSpec::parse(
            &y.replace("[shop]", "[\"x y\"]"),
            std::path::Path::new("app.yaml"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("dbauth.databases"), "{e}");
    }
}
