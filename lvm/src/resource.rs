//! Names of the Mesos resources berth sells besides cpus/mem/disk/ports, in one place: the
//! agent offers them (`berth-agent resources`) and the executor reads them from a TaskInfo.
//! They live here because both crates already depend on berth-lvm.

/// MiB of the task's /home volume (SCALAR).
pub const HOME: &str = "home";
/// Mbit/s of the task's egress and ingress limit (SCALAR).
pub const BANDWIDTH: &str = "bandwidth";
/// VLAN ids the node's trunk carries (RANGES), offered by the agent. The executor takes a
/// task's VLAN from its `berth.vlan` label and does not consume this resource (yet).
pub const VLANS: &str = "vlans";
