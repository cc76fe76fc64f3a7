//! `/etc/berth/dbauth.toml` (packaging/dbauth.toml documents every key): strict, every
//! name validated at load, the admin password read from its own file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::names;
use super::sql::Grant;
pub use crate::config::file::ConfigError;
use crate::config::file::{self, invalid};

/// The default config file.
pub const DEFAULT_PATH: &str = "/etc/berth/dbauth.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: SocketAddr,
    state: PathBuf,
    #[serde(default = "default_sweep")]
    sweep_secs: u64,
    #[serde(default = "default_states")]
    task_states: Vec<String>,
    #[serde(default = "default_task_wait")]
    task_wait_secs: u64,
    marathon: RawMarathon,
    database: RawDatabase,
    tls: Option<RawTls>,
    #[serde(default)]
    grant: Vec<RawGrant>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarathon {
    url: String,
    #[serde(default = "default_timeout")]
    timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    admin_user: String,
    admin_password_file: PathBuf,
    client_host: Option<String>,
    client_port: Option<u16>,
}

/// The API's TLS (absent: plain HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    app: String,
    database: String,
    privileges: Vec<String>,
}

fn default_sweep() -> u64 {
    60
}
fn default_timeout() -> u64 {
    10
}
fn default_port() -> u16 {
    3306
}
fn default_states() -> Vec<String> {
    vec!["TASK_STARTING".into(), "TASK_RUNNING".into()]
}
fn default_task_wait() -> u64 {
    10
}

const STATES: &[&str] = &["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING"];

/// The admin connection. `Debug` leaves the password out.
#[derive(Clone)]
pub struct Database {
    pub host: String,
    pub port: u16,
    pub admin_user: String,
    pub admin_password: String,
    /// What callers are told to connect to.
    pub client_host: String,
    pub client_port: u16,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("admin_user", &self.admin_user)
            .field("client_host", &self.client_host)
            .field("client_port", &self.client_port)
            .finish_non_exhaustive()
    }
}

/// The loaded config.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub state: PathBuf,
    pub sweep: Duration,
    /// Marathon task states that count as "a live task of the app".
    pub task_states: Vec<String>,
    /// How long a request waits for Marathon to list the caller's task (Marathon learns
    /// a task's address from its TASK_STARTING, a moment after init got its lease).
    pub task_wait: Duration,
    pub marathon_url: String,
    pub marathon_timeout: Duration,
    pub database: Database,
    /// The API's certificate and key (PEM); None: plain HTTP.
    pub tls: Option<berth_http::tls::ServerTls>,
    /// App id -> database -> privileges.
    pub grants: BTreeMap<String, BTreeMap<String, Vec<&'static str>>>,
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut cfg = Config::parse(&file::read(path)?, path)?;
        let pw_file = cfg.database.admin_password.clone();
        let pw = std::fs::read_to_string(&pw_file).map_err(|err| {
            invalid(
                path,
                "database.admin_password_file",
                format!("cannot read {pw_file}: {err}"),
            )
        })?;
        cfg.database.admin_password = pw.trim_end_matches(['\n', '\r']).to_string();
        Ok(cfg)
    }

    /// Parses and validates `text`; `database.admin_password` holds the password FILE's
    /// path until [`Config::load`] reads it.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let invalid = |key: &str, why: String| invalid(path, key, why);
        let raw: Raw = file::parse_toml(path, text)?;
        if !raw.marathon.url.starts_with("http://") && !raw.marathon.url.starts_with("https://") {
            return Err(invalid(
                "marathon.url",
                format!("{:?} is not an http:// or https:// URL", raw.marathon.url),
            ));
        }
        if raw.sweep_secs == 0 || raw.marathon.timeout_secs == 0 {
            return Err(invalid(
                "sweep_secs, marathon.timeout_secs",
                "must be at least 1".into(),
            ));
        }
        if raw.task_states.is_empty() {
            return Err(invalid("task_states", "name at least one state".into()));
        }
        for s in &raw.task_states {
            if !STATES.contains(&s.as_str()) {
                return Err(invalid(
                    "task_states",
                    format!("{s:?} is not one of {}", STATES.join(", ")),
                ));
            }
        }
        let mut grants: BTreeMap<String, BTreeMap<String, Vec<&'static str>>> = BTreeMap::new();
        for (i, g) in raw.grant.iter().enumerate() {
            let at = |e: names::NameError, key: &str| {
                invalid(&format!("grant[{i}].{key}"), e.to_string())
            };
            names::app_id(&g.app).map_err(|e| at(e, "app"))?;
            names::database(&g.database).map_err(|e| at(e, "database"))?;
            if g.privileges.is_empty() {
                return Err(invalid(
                    &format!("grant[{i}].privileges"),
                    "name at least one privilege".into(),
                ));
            }
            let mut privs = Vec::new();
            for p in &g.privileges {
                let p = names::privilege(p).map_err(|e| at(e, "privileges"))?;
                if !privs.contains(&p) {
                    privs.push(p);
                }
            }
            let per_app = grants.entry(g.app.clone()).or_default();
            if per_app.insert(g.database.clone(), privs).is_some() {
                return Err(invalid(
                    &format!("grant[{i}]"),
                    format!(
                        "app {} and database {} are granted twice",
                        g.app, g.database
                    ),
                ));
            }
        }
        let db = raw.database;
        Ok(Config {
            listen: raw.listen,
            state: raw.state,
            sweep: Duration::from_secs(raw.sweep_secs),
            task_states: raw.task_states,
            task_wait: Duration::from_secs(raw.task_wait_secs),
            marathon_url: raw.marathon.url.trim_end_matches('/').to_string(),
            marathon_timeout: Duration::from_secs(raw.marathon.timeout_secs),
            database: Database {
                client_host: db.client_host.unwrap_or_else(|| db.host.clone()),
                client_port: db.client_port.unwrap_or(db.port),
                host: db.host,
                port: db.port,
                admin_user: db.admin_user,
                admin_password: db.admin_password_file.to_string_lossy().into_owned(),
            },
            tls: raw.tls.map(|t| berth_http::tls::ServerTls {
                cert_file: t.cert_file,
                key_file: t.key_file,
                client_ca_file: None,
            }),
            grants,
        })
    }

    /// The grants of `app` for `databases`, or the first database it may not have.
    pub fn grants_for(&self, app: &str, databases: &[String]) -> Result<Vec<Grant>, String> {
        let table = self.grants.get(app);
        databases
            .iter()
            .map(|d| {
                table
                    .and_then(|t| t.get(d))
                    .map(|p| Grant {
                        database: d.clone(),
                        privileges: p.clone(),
                    })
                    .ok_or_else(|| d.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "0.0.0.0:9380"
state = "/var/lib/berth/dbauth.sqlite"
[marathon]
url = "http://marathon:8080/"
[database]
host = "127.0.0.1"
admin_user = "berth_dbauth"
admin_password_file = "/etc/berth/dbauth.password"
[[grant]]
app = "/shop/web"
database = "shop"
privileges = ["select", "INSERT", "SELECT"]
"#;

    fn parse(t: &str) -> Result<Config, String> {
        Config::parse(t, Path::new("dbauth.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn good() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.marathon_url, "http://marathon:8080");
        assert_eq!((c.database.port, c.database.client_port), (3306, 3306));
        assert_eq!(c.task_states, ["TASK_STARTING", "TASK_RUNNING"]);
        assert_eq!(c.task_wait, Duration::from_secs(10));
        let g = c.grants_for("/shop/web", &["shop".into()]).unwrap();
        assert_eq!(g[0].privileges, ["SELECT", "INSERT"]);
        assert_eq!(
            c.grants_for("/shop/web", &["other".into()]),
            Err("other".into())
        );
        assert_eq!(c.grants_for("/other", &["shop".into()]), Err("shop".into()));
        assert!(!format!("{:?}", c.database).contains("password"));
        assert!(c.tls.is_none());
        let t = parse(&format!(
            "{GOOD}[tls]\ncert_file = \"/etc/berth/dbauth.pem\"\nkey_file = \"/etc/berth/dbauth.key\"\n"
        ))
        .unwrap();
        assert_eq!(
            t.tls.map(|t| t.cert_file),
            Some(PathBuf::from("/etc/berth/dbauth.pem"))
        );
    }

    #[test]
    fn bad() {
        for (from, to, want) in [
            ("listen =", "lisen =", "unknown field `lisen`"),
            (
                "\"/shop/web\"",
                "\"/shop/web'--\"",
                "grant[0].app: bad app id",
            ),
            (
                "\"shop\"",
                "\"shop`x\"",
                "grant[0].database: bad database name",
            ),
            ("\"shop\"", "\"mysql\"", "system schema"),
            (
                "\"select\"",
                "\"ALL\"",
                "grant[0].privileges: privilege \"ALL\"",
            ),
            ("http://marathon", "ftp://marathon", "marathon.url"),
            (
                "[marathon]",
                "task_states = [\"TASK_KILLED\"]\n[marathon]",
                "task_states",
            ),
        ] {
            let e = parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(
                e.starts_with("dbauth.toml: ") && e.contains(want),
                "{to}: {e}"
            );
        }
        let twice = format!("{GOOD}[[grant]]\napp = \"/shop/web\"\ndatabase = \"shop\"\nprivileges = [\"SELECT\"]\n");
        assert!(parse(&twice).unwrap_err().contains("granted twice"));
    }
}
