//! Removing cache entries no task uses. An entry is in use when a container's checkpoint
//! names it (`outputs.image`, written by the image step) or an overlay mount has it as a
//! lower layer (`/proc/self/mountinfo`). Each entry is removed under its lock, so never
//! while it is being unpacked, and only when it was last used (unpacked, or found by a
//! task's image step, which touches it) longer than `min_age` ago: a task between its
//! image step and its overlay mount is not yet in a checkpoint or a mount.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use super::cache::Cache;
use super::ImageError;
use crate::task::steps::Checkpoint;

/// Cache entries named by the checkpoints under `state_dir`.
pub fn named_by_checkpoints(state_dir: &Path) -> BTreeSet<PathBuf> {
    let mut used = BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(state_dir) else {
        return used;
    };
    for e in rd.flatten() {
        if let Some(lower) = Checkpoint::load(&e.path()).and_then(|cp| cp.outputs.image) {
            if let Some(entry) = lower.parent() {
                used.insert(entry.to_path_buf());
            }
        }
    }
    used
}

/// Lower directories' parents of the overlay mounts in a mountinfo text.
pub fn overlay_lowers(mountinfo: &str) -> BTreeSet<PathBuf> {
    let mut used = BTreeSet::new();
    for line in mountinfo.lines() {
        let Some((_, tail)) = line.split_once(" - ") else {
            continue;
        };
        let mut f = tail.split(' ');
        if f.next() != Some("overlay") {
            continue;
        }
        let opts = f.nth(1).unwrap_or("");
        for o in opts.split(',') {
            if let Some(lowers) = o.strip_prefix("lowerdir=") {
                for l in lowers.split(':') {
                    if let Some(entry) = Path::new(l).parent() {
                        used.insert(entry.to_path_buf());
                    }
                }
            }
        }
    }
    used
}

/// What [`prune`] removed (or, with `dry_run`, would remove) and kept.
#[derive(Debug, Default, PartialEq)]
pub struct Pruned {
    pub removed: Vec<PathBuf>,
    pub kept: Vec<PathBuf>,
}

/// Removes every entry of the cache not in `in_use` and not used within `min_age`, and
/// temporaries of crashed unpacks.
pub fn prune(
    cache: &Cache,
    in_use: &BTreeSet<PathBuf>,
    min_age: Duration,
    dry_run: bool,
) -> Result<Pruned, ImageError> {
    let mut out = Pruned::default();
    let rd = match std::fs::read_dir(&cache.dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ImageError::io("cannot read", &cache.dir, e)),
    };
    let mut names: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        // `sha256-<hex>` and `.tmp-sha256-<hex>-<pid>-<n>` share the lock of `sha256-<hex>`.
        let key = match name.strip_prefix(".tmp-") {
            Some(t) => t.get(..71).unwrap_or(t).to_string(),
            None if name.starts_with("sha256-") => name.clone(),
            None => continue,
        };
        let path = cache.dir.join(&name);
        let recent = std::fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_none_or(|age| age < min_age);
        if in_use.contains(&path) || recent {
            out.kept.push(path);
            continue;
        }
        if dry_run {
            out.removed.push(path);
            continue;
        }
        let lock_path = cache.dir.join(format!(".{key}.lock"));
        let lock = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ImageError::io("cannot open", &lock_path, e))?;
        let _lock = Flock::lock(lock, FlockArg::LockExclusive)
            .map_err(|(_, e)| ImageError::io("cannot lock", &lock_path, e.into()))?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => out.removed.push(path),
            // A temporary renamed into place while we waited for the lock.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("cannot remove", &path, e)),
        }
    }
    Ok(out)
}
