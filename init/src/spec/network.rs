//! The `network` key: DHCP on one interface of the container, before any service starts.
//!
//! ```yaml
//! network:
//!   dhcp: eth0                 # the interface (required)
//!   dhcp_timeout: 30s          # no lease within this -> init exits 1 (default 30s)
//!   resolv_conf: /etc/resolv.conf   # where DNS servers/domain go (default)
//!   hostname: web-1            # DHCP option 12 (default: the container's hostname)
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::duration::Dur;

/// Default `dhcp_timeout`.
pub const DEFAULT_DHCP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `resolv_conf`.
pub const DEFAULT_RESOLV_CONF: &str = "/etc/resolv.conf";

/// A network interface name, checked as the kernel would (1-15 bytes, no `/`, `:`,
/// whitespace or control characters, not `.`/`..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface(pub String);

impl Iface {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, String> {
        let bad = name.is_empty()
            || name.len() > 15
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
        if bad {
            return Err(format!(
                "bad interface name {name:?}: valid names are 1-15 bytes without '/', ':', whitespace or control characters"
            ));
        }
        Ok(Iface(name.to_string()))
    }
}

impl<'de> Deserialize<'de> for Iface {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Iface::new(&s).map_err(de::Error::custom)
    }
}

/// The `network` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Interface to run DHCP on.
    pub dhcp: Iface,
    /// How long to wait for the first lease.
    pub dhcp_timeout: Option<Dur>,
    /// resolv.conf to write.
    pub resolv_conf: Option<PathBuf>,
    /// Option 12; default: the container's hostname.
    pub hostname: Option<String>,
}

impl NetworkSpec {
    /// Only an interface, defaults for the rest (what `BERTH_DHCP_IFACE` alone gives).
    pub fn for_iface(iface: Iface) -> Self {
        NetworkSpec {
            dhcp: iface,
            dhcp_timeout: None,
            resolv_conf: None,
            hostname: None,
        }
    }

    /// The lease timeout.
    pub fn timeout(&self) -> Duration {
        self.dhcp_timeout.map_or(DEFAULT_DHCP_TIMEOUT, |d| d.0)
    }

    /// The resolv.conf path.
    pub fn resolv_conf(&self) -> PathBuf {
        self.resolv_conf
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RESOLV_CONF))
    }

    /// Applies `BERTH_DHCP_IFACE` (given as `env_iface`): the environment wins over the
    /// spec's interface (the executor knows how the container is wired); the spec's other
    /// options stay. An empty variable means "not set".
    pub fn merge_env(spec: Option<Self>, env_iface: Option<&str>) -> Result<Option<Self>, String> {
        match env_iface.filter(|v| !v.is_empty()) {
            None => Ok(spec),
            Some(name) => {
                let iface = Iface::new(name).map_err(|m| format!("BERTH_DHCP_IFACE: {m}"))?;
                Ok(Some(match spec {
                    Some(mut s) => {
                        s.dhcp = iface;
                        s
                    }
                    None => NetworkSpec::for_iface(iface),
                }))
            }
        }
    }
}
