//! A DHCP lease, its timers, and its file (JSON, written atomically) so a restarted
//! container asks for the same address (INIT-REBOOT) instead of starting from scratch.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::DhcpError;

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Server identifier (option 54): where renewals go, by unicast.
    pub server_id: Ipv4Addr,
    /// Routers (option 3).
    pub routers: Vec<Ipv4Addr>,
    /// Classless static routes (option 121): (destination, prefix, gateway).
    pub routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// Domain name (option 15).
    pub domain: Option<String>,
    /// Interface MTU (option 26).
    pub mtu: Option<u16>,
    /// Lease time (option 51), seconds.
    pub lease_secs: u32,
    /// T1 (option 58) or lease/2.
    pub t1_secs: u32,
    /// T2 (option 59) or lease*7/8.
    pub t2_secs: u32,
    /// When the ACK arrived (seconds since the epoch).
    pub acquired_at: u64,
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Lease {
    /// Time left until `acquired_at + secs` (zero if past).
    fn left(&self, secs: u32, now: u64) -> Duration {
        Duration::from_secs((self.acquired_at + u64::from(secs)).saturating_sub(now))
    }
    /// Until T1.
    pub fn until_renew(&self, now: u64) -> Duration {
        self.left(self.t1_secs, now)
    }
    /// Until T2.
    pub fn until_rebind(&self, now: u64) -> Duration {
        self.left(self.t2_secs, now)
    }
    /// Until expiry.
    pub fn until_expiry(&self, now: u64) -> Duration {
        self.left(self.lease_secs, now)
    }
    /// Expired at `now`?
    pub fn expired(&self, now: u64) -> bool {
        self.until_expiry(now).is_zero()
    }

    /// Load a lease file; `Ok(None)` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, DhcpError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|err| DhcpError::LeaseFile {
                    path: path.to_path_buf(),
                    err,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(DhcpError::File {
                what: "read",
                path: path.to_path_buf(),
                err,
            }),
        }
    }

    /// Write the lease file atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), DhcpError> {
        let tmp = path.with_extension("tmp");
        let data = serde_json::to_vec_pretty(self).expect("a lease serializes");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|err| DhcpError::File {
                what: "create",
                path: dir.to_path_buf(),
                err,
            })?;
        }
        std::fs::write(&tmp, data).map_err(|err| DhcpError::File {
            what: "write",
            path: tmp.clone(),
            err,
        })?;
        std::fs::rename(&tmp, path).map_err(|err| DhcpError::File {
            what: "rename to",
            path: path.to_path_buf(),
            err,
        })
    }

    /// Remove the lease file (absent is fine).
    pub fn remove_file(path: &Path) -> Result<(), DhcpError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(DhcpError::File {
                what: "remove",
                path: path.to_path_buf(),
                err,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 0, 0, 5),
            prefix_len: 24,
            server_id: Ipv4Addr::new(10, 0, 0, 1),
            routers: vec![Ipv4Addr::new(10, 0, 0, 1)],
            routes: vec![],
            dns: vec![Ipv4Addr::new(10, 0, 0, 1)],
            domain: Some("lab".into()),
            mtu: None,
            lease_secs: 100,
            t1_secs: 50,
            t2_secs: 87,
            acquired_at: 1000,
        }
    }

    #[test]
    fn timers() {
        let l = sample();
        assert_eq!(l.until_renew(1000), Duration::from_secs(50));
        assert_eq!(l.until_rebind(1040), Duration::from_secs(47));
        assert!(!l.expired(1099));
        assert!(l.expired(1100));
        assert_eq!(l.until_renew(2000), Duration::ZERO);
    }

    #[test]
    fn file_roundtrip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/lease.json");
        assert_eq!(Lease::load(&p).unwrap(), None);
        sample().save(&p).unwrap();
        assert_eq!(Lease::load(&p).unwrap(), Some(sample()));
        Lease::remove_file(&p).unwrap();
        Lease::remove_file(&p).unwrap();
        std::fs::write(&p, "{\"address\": 1}").unwrap();
        assert!(Lease::load(&p).is_err());
    }
}
