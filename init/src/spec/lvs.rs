//! A service's `lvs` key: register the service with the LVS director(s) once healthy,
//! weight 0 when its health fails, drain before stop, deregister after.
//!
//! ```yaml
//! services:
//!   web:
//!     command: [/usr/sbin/httpd, -f]
//!     health: {http: {path: /ping}}
//!     lvs:
//!       director: [http://10.0.0.2:9370, http://10.0.0.3:9370]  # one or more (HA pair)
//!       vip: 10.0.0.100:80/tcp     # the virtual service, as the director names it
//!       port: 8080                 # the real server's port (this container's)
//!       weight: 1                  # default 1
//!       drain: 2s                  # weight 0 this long before the stop signal (default 2s)
//! ```

use std::time::Duration;

use berth_netcfg::ipvs::ServiceKey;
use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::duration::Dur;
use super::service::Port;

/// Default `drain`.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(2);

/// A director's API base URL (`http://host:port`, no path, query or credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorUrl(pub String);

impl<'de> Deserialize<'de> for DirectorUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"));
        let ok = rest.is_some_and(|r| {
            let r = r.trim_end_matches('/');
            !r.is_empty()
                && !r.contains(['/', '?', '#', '@'])
                && !r.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if !ok {
            return Err(de::Error::custom(format_args!(
                "bad director URL {s:?}: expected http://HOST:PORT or https://HOST:PORT"
            )));
        }
        Ok(DirectorUrl(s.trim_end_matches('/').to_string()))
    }
}

fn vip<'de, D: Deserializer<'de>>(d: D) -> Result<ServiceKey, D::Error> {
    let s = String::deserialize(d)?;
    s.parse()
        .map_err(|e| de::Error::custom(format_args!("{e}")))
}

fn directors<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<DirectorUrl>, D::Error> {
    let v = Vec::<DirectorUrl>::deserialize(d)?;
    if v.is_empty() {
        return Err(de::Error::custom(
            "director: name at least one director URL",
        ));
    }
    Ok(v)
}

fn one() -> u32 {
    1
}

/// The `lvs` section of a service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvsSpec {
    /// The directors' API URLs; each is told the same.
    #[serde(deserialize_with = "directors")]
    pub director: Vec<DirectorUrl>,
    /// The virtual service.
    #[serde(deserialize_with = "vip")]
    pub vip: ServiceKey,
    /// The real server's port.
    pub port: Port,
    /// Weight while healthy.
    #[serde(default = "one")]
    pub weight: u32,
    /// How long weight 0 holds before the stop signal.
    drain: Option<Dur>,
}

impl LvsSpec {
    /// The drain time (default [`DEFAULT_DRAIN`]).
    pub fn drain(&self) -> Duration {
        self.drain.map_or(DEFAULT_DRAIN, |d| d.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(y: &str) -> Result<LvsSpec, String> {
        serde_yaml::from_str(y).map_err(|e| e.to_string())
    }

    #[test]
    fn good() {
        let s = parse(
            "director: [http://10.0.0.2:9370/]\nvip: 10.0.0.100:80/tcp\nport: 8080\ndrain: 500ms\n",
        )
        .unwrap();
        assert_eq!(s.director, vec![DirectorUrl("http://10.0.0.2:9370".into())]);
        assert_eq!(
            (s.vip.to_string(), s.port.0, s.weight),
            ("10.0.0.100:80/tcp".into(), 8080, 1)
        );
        assert_eq!(s.drain(), Duration::from_millis(500));
    }

    #[test]
    fn bad() {
        for (y, want) in [
            (
                "director: []\nvip: 10.0.0.100:80\nport: 80\n",
                "at least one",
            ),
            (
                "director: [ftp://x]\nvip: 10.0.0.100:80\nport: 80\n",
                "bad director URL",
            ),
            (
                "director: [http://u:p@x:1]\nvip: 10.0.0.100:80\nport: 80\n",
                "bad director URL",
            ),
            (
                "director: [http://x:1]\nvip: 10.0.0.100\nport: 80\n",
                "virtual service",
            ),
            (
                "director: [http://x:1]\nvip: 10.0.0.100:80\nport: 0\n",
                "out of range",
            ),
            (
                "director: [http://x:1]\nvip: 10.0.0.100:80\nport: 80\nwieght: 2\n",
                "unknown field",
            ),
        ] {
            let e = parse(y).unwrap_err();
            assert!(e.contains(want), "{y}: {e}");
        }
    }

    #[test]
    fn in_an_app_spec() {
        let y = "services:\n  web:\n    command: [/bin/true]\n    lvs:\n      director: [http://10.0.0.2:9370]\n      vip: 10.0.0.100:80/tcp\n      port: 8080\n";
        let spec = crate::spec::AppSpec::parse(y, std::path::Path::new("app.yaml")).unwrap();
        assert_eq!(spec.services[0].lvs.as_ref().map(|l| l.port.0), Some(8080));
        let e = crate::spec::AppSpec::parse(
            &y.replace("8080", "80800"),
            std::path::Path::new("app.yaml"),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("app.yaml:7:"), "{e}");
    }
}
