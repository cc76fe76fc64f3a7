//! The `statsd` key: app metrics (the seed's PROC QPS / PROC DELAY) sent by the app to a
//! statsd-compatible UDP port on the container's loopback, aggregated by init every step
//! and handed to berth-agent through the status socket.
//!
//! ```yaml
//! statsd:
//!   port: 8125        # UDP on 127.0.0.1 (default 8125)
//!   step: 10s         # aggregation step (default 10s, 1s-10m)
//!   max_keys: 1000    # distinct name+tags per step; more are dropped and counted (default 1000)
//! ```

use std::time::Duration;

use serde::Deserialize;

use super::duration::Dur;
use super::service::Port;

/// Default `port`.
pub const DEFAULT_PORT: u16 = 8125;
/// Default `step`.
pub const DEFAULT_STEP: Duration = Duration::from_secs(10);
/// Default `max_keys`.
pub const DEFAULT_MAX_KEYS: usize = 1000;

/// The `statsd` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsdSpec {
    /// UDP port on 127.0.0.1.
    pub port: Option<Port>,
    /// Aggregation step.
    pub step: Option<Dur>,
    /// Distinct keys per step.
    pub max_keys: Option<usize>,
}

impl StatsdSpec {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port.map_or(DEFAULT_PORT, |p| p.0)
    }
    /// The step.
    pub fn step(&self) -> Duration {
        self.step.map_or(DEFAULT_STEP, |d| d.0)
    }
    /// The key limit.
    pub fn max_keys(&self) -> usize {
        self.max_keys.unwrap_or(DEFAULT_MAX_KEYS)
    }

    /// What serde cannot check; the message names the key below `statsd`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let step = self.step();
        if step < Duration::from_secs(1) || step > Duration::from_secs(600) {
            return Err((
                "step",
                format!("statsd.step: {step:?} is out of range; valid steps are 1s to 10m"),
            ));
        }
        if !(1..=100_000).contains(&self.max_keys()) {
            return Err((
                "max_keys",
                format!(
                    "statsd.max_keys: {} is out of range; valid limits are 1-100000",
                    self.max_keys()
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_limits() {
        let s: StatsdSpec = serde_yaml::from_str("{}").unwrap();
        assert_eq!(
            (s.port(), s.step(), s.max_keys()),
            (8125, DEFAULT_STEP, 1000)
        );
        assert!(s.check().is_ok());
        let fast: StatsdSpec = serde_yaml::from_str("step: 500ms").unwrap();
        assert_eq!(fast.check().unwrap_err().0, "step");
        let none: StatsdSpec = serde_yaml::from_str("max_keys: 0").unwrap();
        assert_eq!(none.check().unwrap_err().0, "max_keys");
        assert!(serde_yaml::from_str::<StatsdSpec>("port: 0").is_err());
        assert!(serde_yaml::from_str::<StatsdSpec>("host: 0.0.0.0").is_err());
    }
}
