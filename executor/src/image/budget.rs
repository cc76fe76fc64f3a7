//! Keeping the cache under a size budget: entries are evicted least recently used first
//! (their mtime, which an unpack sets and every task's image step touches under the
//! entry's lock) until the cache fits. Entries in use (see [`super::prune`]) and entries
//! used within `min_age` are never evicted; the age is checked again under the entry's
//! lock, so an image being unpacked, or found by a task that has not yet written its
//! checkpoint, stays.

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::cache::Cache;
use super::lock::EntryLock;
use super::ImageError;

/// One entry evicted (or, with `dry_run`, that would be).
#[derive(Debug, Clone, PartialEq)]
pub struct Evicted {
    pub path: PathBuf,
    /// Its disk usage, bytes.
    pub bytes: u64,
    pub last_used: SystemTime,
    /// The cache's size before this eviction, bytes.
    pub cache_bytes: u64,
}

/// Disk usage of a tree (allocated blocks; hard links counted once; symlinks not followed).
pub fn disk_usage(path: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(m) = std::fs::symlink_metadata(p) else {
            return 0;
        };
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            return 0;
        }
        let mut n = m.blocks() * 512;
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                n += rd.flatten().map(|e| walk(&e.path(), seen)).sum::<u64>();
            }
        }
        n
    }
    walk(path, &mut HashSet::new())
}

fn last_used(path: &Path) -> Option<SystemTime> {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
}

fn recent(t: Option<SystemTime>, min_age: Duration) -> bool {
    t.and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_none_or(|age| age < min_age)
}

/// Evicts entries (`sha256-<hex>`), least recently used first, until the cache's entries
/// take at most `budget` bytes; never one in `in_use` or used within `min_age`.
pub fn evict_to_budget(
    cache: &Cache,
    in_use: &BTreeSet<PathBuf>,
    min_age: Duration,
    budget: u64,
    dry_run: bool,
) -> Result<Vec<Evicted>, ImageError> {
    let rd = match std::fs::read_dir(&cache.dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(ImageError::io("cannot read", &cache.dir, e)),
    };
    let mut entries: Vec<(SystemTime, String, PathBuf, u64)> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("sha256-"))
        .map(|e| {
            let p = e.path();
            let t = last_used(&p).unwrap_or(SystemTime::UNIX_EPOCH);
            let bytes = disk_usage(&p);
            (t, e.file_name().to_string_lossy().into_owned(), p, bytes)
        })
        .collect();
    entries.sort();
    let mut total: u64 = entries.iter().map(|e| e.3).sum();
    let mut out = vec![];
    for (t, key, path, bytes) in entries {
        if total <= budget {
            break;
        }
        if in_use.contains(&path) || recent(Some(t), min_age) {
            continue;
        }
        let ev = Evicted {
            path: path.clone(),
            bytes,
            last_used: t,
            cache_bytes: total,
        };
        if dry_run {
            total -= bytes;
            out.push(ev);
            continue;
        }
        let lock_path = cache.lock_path_of(&key);
        let lock = EntryLock::lock(&lock_path)
            .map_err(|e| ImageError::io("cannot lock", &lock_path, e))?;
        // A task may have found it since we looked (it touches the entry under the lock).
        if recent(last_used(&path), min_age) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ImageError::io("cannot remove", &path, e)),
        }
        lock.retire();
        total -= bytes;
        out.push(ev);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cache: &Cache, name: &str, kib: usize, age_secs: u64) -> PathBuf {
        let p = cache.dir.join(name);
        std::fs::create_dir_all(p.join("rootfs")).unwrap();
        std::fs::write(p.join("rootfs/blob"), vec![7u8; kib * 1024]).unwrap();
        std::fs::write(cache.lock_path_of(name), "").unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_secs);
        std::fs::File::open(&p).unwrap().set_modified(t).unwrap();
        p
    }

    #[test]
    fn evicts_oldest_first_until_under_budget_and_keeps_what_is_used() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        let used = entry(&cache, "sha256-aa", 400, 5000); // oldest, in use
        let old = entry(&cache, "sha256-bb", 400, 4000);
        let mid = entry(&cache, "sha256-cc", 400, 3000);
        let new = entry(&cache, "sha256-dd", 400, 2000);
        let fresh = entry(&cache, "sha256-ee", 400, 1); // used within min_age
        let in_use = BTreeSet::from([used.clone()]);
        let each = disk_usage(&old);
        assert!(each >= 400 * 1024, "{each}");
        let min_age = Duration::from_secs(600);
        // Room for three entries: two must go, the oldest two not in use.
        let budget = 3 * each + each / 2;
        let dry = evict_to_budget(&cache, &in_use, min_age, budget, true).unwrap();
        let paths: Vec<_> = dry.iter().map(|e| e.path.clone()).collect();
        assert_eq!(paths, [old.clone(), mid.clone()]);
        assert!(old.exists() && mid.exists(), "a dry run removes nothing");
        assert_eq!(dry[0].cache_bytes, 5 * each);
        let done = evict_to_budget(&cache, &in_use, min_age, budget, false).unwrap();
        assert_eq!(done, dry);
        assert!(!old.exists() && !mid.exists());
        assert!(
            !cache.lock_path_of("sha256-bb").exists(),
            "its lock file went too"
        );
        assert!(used.exists() && new.exists() && fresh.exists());
        // Under budget: nothing more. A budget nothing fits: all but used and fresh.
        assert!(evict_to_budget(&cache, &in_use, min_age, budget, false)
            .unwrap()
            .is_empty());
        let all = evict_to_budget(&cache, &in_use, min_age, 0, false).unwrap();
        assert_eq!(all.iter().map(|e| &e.path).collect::<Vec<_>>(), [&new]);
        assert!(used.exists() && fresh.exists());
    }
}
