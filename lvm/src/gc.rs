//! Garbage collection: remove what no live task owns, and what a crash left half built.
//!
//! A volume goes if it is incomplete and nobody holds its lock (the builder died), or if
//! `is_live` says its owner is gone. Volumes whose lock is held are skipped: someone is
//! working on them right now. Like every teardown, GC keeps going past errors and reports all.
//!
//! Image bases (`berth-img-*`, layout `image`, owner `image:<volume name>`) are kept for reuse
//! by the next task of the image; [`image_bases`] lists them so a caller's `is_live` can
//! decide (e.g. keep the images of the tasks it runs, or those used recently). Removing a
//! base never harms a running root: a thin snapshot does not need its origin.

use crate::name::{Owner, VolumeName};
use crate::volume::{Backend, VolumeError, VolumeState};

#[derive(Debug, Default)]
pub struct GcReport {
    pub removed: Vec<VolumeName>,
    pub skipped_busy: Vec<VolumeName>,
    pub errors: Vec<(VolumeName, VolumeError)>,
}

/// One GC pass over `backend`. `is_live(owner)` tells whether a task still owns a volume.
pub fn collect(
    backend: &dyn Backend,
    is_live: &dyn Fn(&Owner) -> bool,
) -> Result<GcReport, VolumeError> {
    let mut report = GcReport::default();
    for v in backend.list()? {
        let doomed = v.state == VolumeState::Incomplete || !is_live(&v.owner);
        if !doomed {
            continue;
        }
        let lock = match try_lock_briefly(backend, &v.name) {
            Ok(Some(l)) => l,
            Ok(None) => {
                report.skipped_busy.push(v.name);
                continue;
            }
            Err(e) => {
                report.errors.push((v.name, e));
                continue;
            }
        };
        // Re-check under the lock: a creator may have rebuilt it since the listing.
        match backend.get(&v.name) {
            Ok(Some(now)) if now.state == VolumeState::Incomplete || !is_live(&now.owner) => {}
            Ok(_) => continue,
            Err(e) => {
                report.errors.push((v.name, e));
                continue;
            }
        }
        match backend.remove_locked(&v.name, &lock) {
            Ok(_) => {
                lock.retire();
                tracing::info!(volume = %v.name, owner = %v.owner, state = ?v.state, "gc removed volume");
                report.removed.push(v.name);
            }
            Err(e) => report.errors.push((v.name, e)),
        }
    }
    Ok(report)
}

/// The owner prefix of image bases.
pub const IMAGE_OWNER_PREFIX: &str = "image:";

/// Whether `owner` is an image base's owner (not a task's).
pub fn is_image_owner(owner: &Owner) -> bool {
    owner.as_str().starts_with(IMAGE_OWNER_PREFIX)
}

/// The image bases of `backend` (complete or not), by name.
pub fn image_bases(backend: &dyn Backend) -> Result<Vec<crate::volume::Volume>, VolumeError> {
    Ok(backend
        .list()?
        .into_iter()
        .filter(|v| v.layout == "image" || is_image_owner(&v.owner))
        .collect())
}

/// `try_lock`, retried for a moment: a lock file's descriptor can be held for an instant by
/// a child another thread is forking (until its exec closes it), which is not "busy".
fn try_lock_briefly(
    backend: &dyn Backend,
    name: &VolumeName,
) -> Result<Option<crate::lock::VolumeLock>, VolumeError> {
    for _ in 0..5 {
        if let Some(l) = backend.try_lock(name)? {
            return Ok(Some(l));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(None)
}
