//! One collection: every container of the state dir with its cgroup counters, its eth0
//! counters (read in its netns over netlink), its /home usage and its init's status.
//! A part that cannot be read is left out of that container's sample and counted in
//! [`Snapshot::errors`] (logged at debug): one broken container never hides the others.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use berth_netcfg::stats::{link_stats_in, LinkStats};

use super::cgroup::{self, CgroupStats, Layout};
use super::init::{self, InitStatus};
use super::task::{self, StateDirError, Task};

/// Where to look.
#[derive(Debug, Clone)]
pub struct Sources {
    pub state_dir: PathBuf,
    pub cgroup_root: PathBuf,
    pub proc_root: PathBuf,
    /// The container's interface whose counters are its traffic (`eth0`).
    pub interface: String,
}

/// /home of a container: bytes used and the filesystem's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub size: u64,
}

/// What one collection found of one container.
#[derive(Debug, Clone)]
pub struct Sample {
    pub task: Task,
    pub cgroup: Option<CgroupStats>,
    pub net: Option<LinkStats>,
    pub home: Option<Usage>,
    pub init: Option<InitStatus>,
}

/// One collection of every container.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: SystemTime,
    pub samples: Vec<Sample>,
    /// Parts that could not be read, by kind (`cgroup`, `net`, `home`, `init`).
    pub errors: Vec<(&'static str, u64)>,
}

impl Snapshot {
    fn error(&mut self, what: &'static str) {
        match self.errors.iter_mut().find(|(w, _)| *w == what) {
            Some(e) => e.1 += 1,
            None => self.errors.push((what, 1)),
        }
    }
}

/// Collects every container now. Only an unreadable state dir fails the whole.
pub async fn collect(src: &Sources) -> Result<Snapshot, StateDirError> {
    let tasks = task::discover(&src.state_dir, &src.proc_root)?;
    let layout = Layout::detect(&src.cgroup_root);
    let mut snap = Snapshot {
        at: SystemTime::now(),
        samples: Vec::with_capacity(tasks.len()),
        errors: Vec::new(),
    };
    for t in tasks {
        let running = t.state != "preparing" && t.state != "exited";
        let cg = match (&t.cgroup, running) {
            (Some(path), true) => match cgroup::read(&layout, path) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::debug!(container = %t.container_id, "{}", crate::error_chain(&e));
                    snap.error("cgroup");
                    None
                }
            },
            _ => None,
        };
        let net = match (&t.netns, running) {
            (Some(ns), true) => match link_stats_in(ns, &src.interface).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(container = %t.container_id, "{}", crate::error_chain(&e));
                    snap.error("net");
                    None
                }
            },
            _ => None,
        };
        let home = match &t.home {
            Some(h) => match home_usage(h) {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(container = %t.container_id, path = %h.display(), error = %e, "home");
                    snap.error("home");
                    None
                }
            },
            None => None,
        };
        let init = match (&t.init_socket, running) {
            (Some(p), true) => {
                let p = p.clone();
                match tokio::task::spawn_blocking(move || init::status(&p)).await {
                    Ok(Ok(s)) => Some(s),
                    Ok(Err(e)) => {
                        tracing::debug!(container = %t.container_id, "{}", crate::error_chain(&e));
                        snap.error("init");
                        None
                    }
                    Err(_) => None,
                }
            }
            _ => None,
        };
        snap.samples.push(Sample {
            task: t,
            cgroup: cg,
            net,
            home,
            init,
        });
    }
    Ok(snap)
}

/// The used bytes and size of the filesystem mounted at `path`; `None` when nothing is
/// mounted there (the volume is not mounted yet, or was unmounted).
pub fn home_usage(path: &Path) -> std::io::Result<Option<Usage>> {
    use std::os::unix::fs::MetadataExt;
    let here = std::fs::metadata(path)?;
    let parent = std::fs::metadata(path.join(".."))?;
    if here.dev() == parent.dev() {
        return Ok(None);
    }
    let v = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let frag = v.fragment_size();
    let size = v.blocks() * frag;
    Ok(Some(Usage {
        used: size.saturating_sub(v.blocks_free() * frag),
        size,
    }))
}
