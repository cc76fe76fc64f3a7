//! A service's `capabilities:` key: the only capabilities the service may ever hold (its
//! bounding set, and its inheritable set cut to match). Without the key a service gets
//! what every service gets (init's set minus CAP_NET_ADMIN/CAP_NET_RAW).
//!
//! ```yaml
//! services:
//!   sshd:
//!     command: [/usr/sbin/sshd, -D, -e]
//!     capabilities: [SETUID, SETGID, SYS_CHROOT, NET_BIND_SERVICE, CHOWN, FOWNER, KILL, AUDIT_WRITE]
//! ```

use serde::de::{self, Deserializer};
use serde::Deserialize;

/// Linux capability names by number (`CAP_` prefix left off), up to CAP_CHECKPOINT_RESTORE.
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities, bit n = capability n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    /// From names like `SETUID` or `CAP_SETUID` (any case).
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut bits = 0u64;
        for n in names {
            let up = n.to_ascii_uppercase();
            let bare = up.strip_prefix("CAP_").unwrap_or(&up);
            match NAMES.iter().position(|&k| k == bare) {
                Some(i) => bits |= 1 << i,
                None => {
                    return Err(format!(
                        "unknown capability {n:?}: valid names are Linux capabilities without or with CAP_, e.g. SETUID, NET_BIND_SERVICE"
                    ))
                }
            }
        }
        Ok(CapSet(bits))
    }

    /// Whether capability `n` is in the set.
    pub fn has(self, n: u32) -> bool {
        n < 64 && self.0 & (1 << n) != 0
    }
}

impl<'de> Deserialize<'de> for CapSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        CapSet::parse(v.iter().map(String::as_str)).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let s = CapSet::parse(["SETUID", "cap_setgid", "Chown"]).unwrap();
        assert_eq!(s.0, (1 << 7) | (1 << 6) | 1);
        assert!(s.has(7) && !s.has(12) && !s.has(200));
        assert!(CapSet::parse(["SETUID", "ROOT"])
            .unwrap_err()
            .contains("\"ROOT\""));
        assert_eq!(NAMES[40], "CHECKPOINT_RESTORE");
        assert_eq!(NAMES[21], "SYS_ADMIN");
    }

    #[test]
    fn yaml() {
        let s: CapSet = serde_yaml::from_str("[KILL, NET_BIND_SERVICE]").unwrap();
        assert_eq!(s.0, (1 << 5) | (1 << 10));
        assert!(serde_yaml::from_str::<CapSet>("[NOPE]").is_err());
    }
}
