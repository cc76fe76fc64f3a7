//! The executor's network settings (`BERTH_EXECUTOR_NET_*`), checked before the network step
//! uses them.

use berth_netcfg::link::macvlan::MacvlanMode;
use berth_netcfg::names::IfName;

/// The executor's network settings (`BERTH_EXECUTOR_NET_PARENT`, `BERTH_EXECUTOR_NET_MODE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The host NIC (or VLAN trunk) the containers' macvlans sit on.
    pub parent: String,
    /// macvlan mode: bridge (default), private, vepa, passthru.
    pub mode: String,
}

/// The executor's settings, checked (a bad setting fails every task that would use it).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NetConfigError {
    #[error("BERTH_EXECUTOR_NET_PARENT {0:?}: {1}")]
    Parent(String, String),
    #[error("BERTH_EXECUTOR_NET_MODE {0:?}: {1}")]
    Mode(String, String),
}

impl NetConfig {
    pub(in crate::task) fn checked(&self) -> Result<(IfName, MacvlanMode), NetConfigError> {
        let parent = IfName::new(&self.parent)
            .map_err(|e| NetConfigError::Parent(self.parent.clone(), e.to_string()))?;
        let mode = self
            .mode
            .parse::<MacvlanMode>()
            .map_err(|e| NetConfigError::Mode(self.mode.clone(), e.to_string()))?;
        Ok((parent, mode))
    }
}
