//! Removing cache entries no task uses. An entry is in use when a container's checkpoint
//! names it (`outputs.image`, written by the image step) or an overlay mount has it as a
//! lower layer (`/proc/self/mountinfo`). Each entry is removed under its lock, so never
//! while it is being unpacked, and only when it was last used (unpacked, or found by a
//! task's image step, which touches it) longer than `min_age` ago: a task between its
//! image step and its overlay mount is not yet in a checkpoint or a mount. An entry's lock
//! file goes with it (removed while held, see [`super::lock`]), and so do lock files
//! whose entry is gone (left by older versions), when nobody holds them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cache::Cache;
use super::lock::EntryLock;
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
    /// Lock files removed (or, with `dry_run`, that would be) with no entry left.
    pub locks: Vec<PathBuf>,
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
    for name in &names {
        // `sha256-<hex>` and `.tmp-sha256-<hex>-<pid>-<n>` share the lock of `sha256-<hex>`.
        let key = match name.strip_prefix(".tmp-") {
            Some(t) => t.get(..71).unwrap_or(t).to_string(),
            None if name.starts_with("sha256-") => name.clone(),
            None => continue,
        };
        let name = name.clone();
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
        let lock_path = cache.lock_path_of(&key);
        let lock = EntryLock::lock(&lock_path)
            .map_err(|e| ImageError::io("cannot lock", &lock_path, e))?;
        match std::fs::remove_dir_all(&path) {
            Ok(()) => out.removed.push(path),
            // A temporary renamed into place while we waited for the lock.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("cannot remove", &path, e)),
        }
        // No entry of this image any more, and nobody unpacking it (we hold its lock).
        if !cache.dir.join(&key).exists() {
            lock.retire();
        }
    }
    // Lock files of entries that are gone (a crash, or an older berth).
    for name in &names {
        let Some(key) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(".lock"))
            .filter(|k| k.starts_with("sha256-"))
        else {
            continue;
        };
        let lock_path = cache.dir.join(name);
        if cache.dir.join(key).exists() || !lock_path.exists() {
            continue;
        }
        if dry_run {
            out.locks.push(lock_path);
            continue;
        }
        // Held: an unpack is running. Free: retire it unless its entry appeared meanwhile.
        let lock = EntryLock::try_lock(&lock_path)
            .map_err(|e| ImageError::io("cannot lock", &lock_path, e))?;
        if let Some(lock) = lock.filter(|_| !cache.dir.join(key).exists()) {
            lock.retire();
            out.locks.push(lock_path);
        }
    }
    Ok(out)
}
