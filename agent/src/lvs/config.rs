//! The director's configuration file (`/etc/berth/lvs.toml`): where the API listens,
//! which Marathon to follow, and the virtual services berth owns, each fed by one
//! Marathon app. Unknown keys and bad values are errors naming the field.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use berth_http::tls::ServerTls;
use berth_netcfg::ipvs::{FwdMethod, Service, ServiceKey};
use serde::Deserialize;

pub use crate::config::file::ConfigError;
use crate::config::file::{self, invalid};
use crate::marathon;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    listen: SocketAddr,
    marathon: marathon::config::Raw,
    tls: Option<RawTls>,
    #[serde(default)]
    service: Vec<RawService>,
}

/// The API server's TLS (absent: plain HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    vip: String,
    #[serde(default = "default_sched")]
    scheduler: String,
    #[serde(default = "default_forward")]
    forward: String,
    app: String,
    #[serde(default)]
    port_index: usize,
    #[serde(default = "default_weight")]
    weight: u32,
}

fn default_sched() -> String {
    "wrr".into()
}
fn default_forward() -> String {
    "nat".into()
}
fn default_weight() -> u32 {
    1
}

/// One virtual service berth owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualService {
    pub service: Service,
    pub forward: FwdMethod,
    /// The Marathon app id whose tasks are its real servers.
    pub app: String,
    /// Which of a task's `ports` is the real server's port.
    pub port_index: usize,
    /// The weight of a real server that Marathon added (init names its own).
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub listen: SocketAddr,
    /// As written; [`Config::marathon`] resolves it (reads the password file).
    pub marathon: marathon::config::Raw,
    pub tls: Option<ServerTls>,
    pub services: Vec<VirtualService>,
}

/// IPVS scheduler names are at most 15 bytes (IP_VS_SCHEDNAME_MAXLEN) of [a-z0-9].
fn valid_scheduler(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 16
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Marathon app ids: `/` then path segments of [a-z0-9-.].
fn valid_app(s: &str) -> bool {
    s.starts_with('/')
        && s.len() > 1
        && s[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        })
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(&file::read(path)?, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: Raw = file::parse_toml(path, text)?;
        let invalid = |key: String, why: String| invalid(path, key, why);
        // Values are checked now; the password file is read by `marathon()`.
        if let Err(e) = raw.marathon.resolve_values() {
            return Err(invalid(format!("marathon.{}", e.field), e.why));
        }
        let mut seen = BTreeSet::new();
        let mut services = Vec::new();
        for (i, s) in raw.service.iter().enumerate() {
            let f = |name: &str| format!("service[{i}].{name}");
            let key: ServiceKey = s
                .vip
                .parse()
                .map_err(|e| invalid(f("vip"), format!("{e}")))?;
            if !seen.insert(key) {
                return Err(invalid(f("vip"), format!("{key} is listed twice")));
            }
            if !valid_scheduler(&s.scheduler) {
                return Err(invalid(
                    f("scheduler"),
                    format!("{:?} is not an IPVS scheduler name", s.scheduler),
                ));
            }
            let forward: FwdMethod = s
                .forward
                .parse()
                .map_err(|e| invalid(f("forward"), format!("{e}")))?;
            if !valid_app(&s.app) {
                return Err(invalid(
                    f("app"),
                    format!("{:?} is not a Marathon app id (/group/name)", s.app),
                ));
            }
            services.push(VirtualService {
                service: Service::new(key, &s.scheduler),
                forward,
                app: s.app.clone(),
                port_index: s.port_index,
                weight: s.weight,
            });
        }
        Ok(Config {
            listen: raw.listen,
            path: path.into(),
            marathon: raw.marathon,
            tls: raw.tls.map(|t| ServerTls {
                cert_file: t.cert_file,
                key_file: t.key_file,
                client_ca_file: t.client_ca_file,
            }),
            services,
        })
    }

    /// The Marathon client settings, with the password read from its file.
    pub fn marathon(&self) -> Result<marathon::Config, ConfigError> {
        self.marathon
            .resolve()
            .map_err(|e| invalid(&self.path, format!("marathon.{}", e.field), e.why))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "0.0.0.0:9370"
[marathon]
url = "http://marathon.example:8080/"
user = "berth"
password_file = "/etc/berth/marathon.password"
[[service]]
vip = "10.0.0.100:80/tcp"
forward = "dr"
app = "/shop/web"
"#;

    fn parse(t: &str) -> Result<Config, ConfigError> {
        Config::parse(t, Path::new("lvs.toml"))
    }

    #[test]
    fn good_config() {
        let c = parse(GOOD).unwrap();
        assert!(
            matches!(&c.marathon.url, marathon::config::Urls::One(u) if u == "http://marathon.example:8080/")
        );
        let e = c.marathon().unwrap_err().to_string();
        assert!(e.starts_with("lvs.toml: marathon.password_file:"), "{e}");
        let s = &c.services[0];
        assert_eq!(s.service.key.to_string(), "10.0.0.100:80/tcp");
        assert_eq!(
            (s.forward, s.service.scheduler.as_str(), s.weight),
            (FwdMethod::Route, "wrr", 1)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                GOOD.replace("forward = \"dr\"", "forward = \"bridge\""),
                "service[0].forward",
            ),
            (
                GOOD.replace("10.0.0.100:80/tcp", "10.0.0.100/tcp"),
                "service[0].vip",
            ),
            (GOOD.replace("/shop/web", "shop web"), "service[0].app"),
            (
                GOOD.replace("forward = \"dr\"", "scheduler = \"w rr\""),
                "service[0].scheduler",
            ),
            (GOOD.replace("http://", "ftp://"), "marathon.url"),
            (GOOD.replace("user = \"berth\"\n", ""), "marathon.user"),
            (
                format!("{GOOD}[[service]]\nvip = \"10.0.0.100:80\"\napp = \"/b\"\n"),
                "service[1].vip",
            ),
        ];
        for (text, field) in cases {
            let e = parse(&text).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("lvs.toml: {field}:")),
                "{field}: {e}"
            );
        }
        let e = parse(&GOOD.replace("app = ", "ap = "))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `ap`"), "{e}");
    }
}

#[cfg(test)]
mod packaged {
    #[test]
    fn the_packaged_example_parses() {
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/lvs.toml"
        ));
        let c = super::Config::load(path).unwrap();
        assert_eq!(c.services.len(), 1);
        assert_eq!(c.services[0].app, "/shop/web");
    }
}
