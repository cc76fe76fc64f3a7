//! Garbage collection: remove what dead tasks left behind, and nothing of a live one.
//!
//! A task is alive exactly while its executor holds the task lock
//! (`<state dir>/<container id>.lock`, see the executor's `task::lock`): the executor takes
//! it before it makes anything and releases it after its teardown. One run:
//!
//! 1. For each container dir of the state dir, GC tries the task lock. Held: the task is
//!    alive and nothing of it is touched. Free: GC keeps it for the rest of that
//!    container's collection (an executor launching the same task id waits), and once the
//!    container's newest file is older than `grace_secs` removes every part the executor's
//!    steps make ([`dead`]).
//! 2. With `sweep_unowned`, what no container dir claims ([`unowned`]): runtime containers,
//!    run dirs, netns pins, lock files, volumes (berth-lvm's GC), VLAN sub-interfaces
//!    whose recorded users are all gone ([`vlans`], netcfg's records and lock).
//! 3. With an image cache budget, unpacked images no task uses, least recently used first,
//!    until the cache fits ([`images`], the executor's `image::budget`).
//!
//! Every removal keeps going past errors; the [`Report`] lists each thing removed (or, with
//! `--dry-run`, that would be), why, and what failed.
//!
//! # Layout
//! - [`report`]: the items and their text.
//! - [`scan`]: the state dir's containers and what they claim.
//! - [`host`]: runtime, mounts, cgroups, directories (the OS side).
//! - [`dead`]: one dead container's parts.
//! - [`vlans`]: VLAN sub-interfaces no live task uses.
//! - [`unowned`]: what nobody claims.
//! - [`images`]: the image cache over its budget.
//! - [`stats`]: the totals `serve` exports.

pub mod dead;
pub mod host;
pub mod images;
pub mod report;
pub mod scan;
pub mod stats;
pub mod unowned;
pub mod vlans;

use std::path::PathBuf;
use std::time::Duration;

use berth_lvm::lock::FileLock;

use crate::config::{Config, Home};
pub use report::{Item, Kind, Report};

/// What GC looks at, from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state_dir: PathBuf,
    pub runtime: host::Runtime,
    pub run_dir: PathBuf,
    pub netns_dir: PathBuf,
    pub berth_run_dir: PathBuf,
    pub cgroup_root: PathBuf,
    pub grace: Duration,
    pub retain_home: bool,
    pub sweep_unowned: bool,
    /// The volume backend's settings.
    pub home: Home,
    /// The trunk of VLAN sub-interfaces.
    pub net_parent: String,
    /// The executor's image cache, and its budget in bytes (None: unlimited).
    pub image_cache: PathBuf,
    pub image_budget: Option<u64>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            state_dir: c.serve.state_dir.clone(),
            runtime: host::Runtime {
                binary: c.gc.runtime.clone(),
                root: c.gc.runtime_root.clone(),
            },
            run_dir: c.gc.run_dir.clone(),
            netns_dir: c.gc.netns_dir.clone(),
            berth_run_dir: c.gc.berth_run_dir.clone(),
            cgroup_root: c.metrics.cgroup_root.clone(),
            grace: Duration::from_secs(c.gc.grace_secs),
            retain_home: c.gc.retain_home,
            sweep_unowned: c.gc.sweep_unowned,
            home: c.resources.home.clone(),
            net_parent: c.resources.net.parent.clone(),
            image_cache: c.gc.image_cache.clone(),
            image_budget: (c.gc.image_cache_budget_mb > 0)
                .then(|| c.gc.image_cache_budget_mb.saturating_mul(1 << 20)),
        }
    }
}

/// The state dir cannot be read: nothing is collected.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the state dir {path}")]
pub struct GcError {
    pub path: PathBuf,
    #[source]
    pub err: std::io::Error,
}

/// One GC run (with `dry`, nothing is removed: the report says what would be).
pub async fn run(s: &Settings, dry: bool) -> Result<Report, GcError> {
    let mut r = Report {
        dry_run: dry,
        ..Report::default()
    };
    let found = scan::scan(&s.state_dir).map_err(|err| GcError {
        path: s.state_dir.clone(),
        err,
    })?;
    let backend = match crate::resources::open_backend(&s.home) {
        Ok(b) => Some(b),
        Err(e) => {
            r.add(
                Kind::Volume,
                "(backend)",
                "volumes are not collected",
                Some(e.to_string()),
            );
            None
        }
    };
    for f in found {
        let lock = scan::lock_path(&s.state_dir, &f.container_id);
        let held = match FileLock::try_lock(&lock) {
            Ok(Some(l)) => l,
            Ok(None) => {
                r.live += 1;
                continue;
            }
            Err(e) => {
                r.add(
                    Kind::LockFile,
                    lock.display().to_string(),
                    "cannot take the task lock",
                    Some(e.to_string()),
                );
                continue;
            }
        };
        // Under the lock: the executor may have finished its teardown meanwhile (and
        // retired its lock file: the one taken here is new, and goes again).
        if f.dir.symlink_metadata().is_err() {
            held.retire();
            continue;
        }
        if f.age < s.grace {
            r.young += 1;
            continue;
        }
        let clean = dead::collect(s, &f, backend.as_deref(), dry, &mut r).await;
        if clean && !dry {
            held.retire();
        }
    }
    if s.sweep_unowned {
        unowned::sweep(s, backend.as_deref(), dry, &mut r).await;
    }
    if let Some(budget) = s.image_budget {
        images::collect(s, budget, dry, &mut r);
    }
    Ok(r)
}
