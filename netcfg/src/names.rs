//! Names derived from task ids: interface names (IFNAMSIZ), netns names, MACs, aliases.
//!
//! Every name berth derives from a task id goes through here, so the rules live in one
//! place: only `[A-Za-z0-9_.-]` survives, the result is length-limited, and a short hash of
//! the *original* id is appended so two ids that sanitize or truncate to the same text stay
//! distinct. The hash is FNV-1a 64: stable across versions and platforms (a derived MAC or
//! netns name must not change when berth is upgraded).

use std::fmt;

/// Prefix of every netns and host-side interface berth creates; GC looks for it.
pub const PREFIX: &str = "berth";
/// Prefix of the IFLA_IFALIAS berth sets on every link it creates (`berth:<owner>`).
pub const ALIAS_PREFIX: &str = "berth:";
/// Linux IFNAMSIZ minus the terminating NUL.
pub const IFNAME_MAX: usize = 15;

/// Errors of name validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("interface name {name:?} is invalid: {why}")]
    IfName { name: String, why: &'static str },
    #[error("netns name {name:?} is invalid: {why}")]
    Netns { name: String, why: &'static str },
    #[error("task id {id:?} is empty or has no usable character")]
    EmptyId { id: String },
}

/// FNV-1a 64-bit hash (stable, dependency-free).
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A validated Linux interface name (1..=15 bytes, no `/`, `:`, whitespace, not `.`/`..`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// Validate `name` as the kernel would (dev_valid_name), plus no `:` (alias syntax).
    pub fn new(name: &str) -> Result<Self, NameError> {
        let err = |why| NameError::IfName {
            name: name.to_string(),
            why,
        };
        if name.is_empty() {
            return Err(err("empty"));
        }
        if name.len() > IFNAME_MAX {
            return Err(err("longer than 15 bytes (IFNAMSIZ)"));
        }
        if name == "." || name == ".." {
            return Err(err("`.` and `..` are reserved"));
        }
        if name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(err("contains `/`, `:`, whitespace or a control character"));
        }
        Ok(Self(name.to_string()))
    }

    /// A host-side name for `task_id` with a role letter (e.g. `v` for a VLAN helper):
    /// `b<role><sanitized prefix><6 hex hash>`, at most 15 bytes.
    pub fn derived(role: char, task_id: &str) -> Result<Self, NameError> {
        let clean: String = sanitize(task_id).chars().filter(|c| *c != '.').collect();
        if clean.trim_matches('_').is_empty() {
            return Err(NameError::EmptyId {
                id: task_id.to_string(),
            });
        }
        let hash = format!("{:06x}", fnv1a64(task_id.as_bytes()) & 0xff_ffff);
        let room = IFNAME_MAX - 2 - hash.len();
        let head: String = clean.chars().take(room).collect();
        Self::new(&format!("b{role}{head}{hash}"))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A validated netns name (a file name under /run/netns).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetnsName(String);

impl NetnsName {
    /// Validate an existing name: 1..=200 bytes of `[A-Za-z0-9_.-]`, not starting with `.`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let err = |why| NameError::Netns {
            name: name.to_string(),
            why,
        };
        if name.is_empty() || name.len() > 200 {
            return Err(err("must be 1..=200 bytes"));
        }
        if name.starts_with('.') {
            return Err(err("must not start with `.`"));
        }
        if sanitize(name) != name {
            return Err(err("only [A-Za-z0-9_.-] are allowed"));
        }
        Ok(Self(name.to_string()))
    }

    /// `berth-<sanitized id, at most 64 chars>-<8 hex hash>`.
    pub fn for_task(task_id: &str) -> Result<Self, NameError> {
        let clean = sanitize(task_id);
        if clean.trim_matches(|c| c == '_' || c == '.').is_empty() {
            return Err(NameError::EmptyId {
                id: task_id.to_string(),
            });
        }
        let head: String = clean.chars().take(64).collect();
        let hash = fnv1a64(task_id.as_bytes()) as u32;
        Self::new(&format!("{PREFIX}-{head}-{hash:08x}"))
    }

    /// True for names berth made (GC uses this to never touch anything else).
    pub fn is_berths(&self) -> bool {
        self.0.starts_with(&format!("{PREFIX}-"))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NetnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MAC address that is stable for `identity`: locally administered, unicast.
pub fn stable_mac(identity: &str) -> [u8; 6] {
    let h = fnv1a64(identity.as_bytes()).to_be_bytes();
    let mut mac = [h[0], h[1], h[2], h[3], h[4], h[5]];
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// Format a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The alias berth puts on links it owns: `berth:<owner>` (truncated to 128 bytes).
pub fn alias_for(owner: &str) -> String {
    let mut a = format!("{ALIAS_PREFIX}{}", sanitize(owner));
    a.truncate(128);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifname_rules() {
        assert!(IfName::new("eth0").is_ok());
        assert!(IfName::new("").is_err());
        assert!(IfName::new("0123456789abcdef").is_err());
        assert!(IfName::new("a/b").is_err());
        assert!(IfName::new("a b").is_err());
        assert!(IfName::new("eth0:1").is_err());
        assert!(IfName::new("..").is_err());
    }

    #[test]
    fn derived_names_are_short_and_distinct() {
        let a = IfName::derived('v', "marathon-app.very-long-task-id-0001").unwrap();
        let b = IfName::derived('v', "marathon-app.very-long-task-id-0002").unwrap();
        assert!(a.as_str().len() <= IFNAME_MAX, "{a}");
        assert_ne!(a, b);
        assert_eq!(
            a,
            IfName::derived('v', "marathon-app.very-long-task-id-0001").unwrap()
        );
        assert!(IfName::derived('v', "$$$").is_err());
        assert!(IfName::derived('v', "a$b").is_ok());
        assert!(IfName::derived('v', "").is_err());
    }

    #[test]
    fn netns_names() {
        let a = NetnsName::for_task("app/x;rm -rf /").unwrap();
        assert!(a.as_str().starts_with("berth-app_x_rm_-rf__-"), "{a}");
        assert!(a.is_berths());
        assert_ne!(a, NetnsName::for_task("app/x;rm -rf _").unwrap());
        assert!(NetnsName::new("../etc").is_err());
        assert!(NetnsName::new("ok-name").is_ok());
        assert!(!NetnsName::new("other").unwrap().is_berths());
    }

    #[test]
    fn mac_is_stable_local_unicast() {
        let m = stable_mac("app.instance-1");
        assert_eq!(m, stable_mac("app.instance-1"));
        assert_ne!(m, stable_mac("app.instance-2"));
        assert_eq!(m[0] & 0x03, 0x02);
        assert_eq!(format_mac(&[0, 1, 0xab, 3, 4, 5]), "00:01:ab:03:04:05");
    }

    #[test]
    fn fnv_known_vector() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
