//! The marker of a complete image base: `<lock dir>/<base>.ready`, holding the base's size
//! and filesystem, written under the base's lock once a report showed it complete (or its
//! build finished), removed under the lock before the base is removed or rebuilt. With it a
//! root is made without a report (`LvmBackend::image_root`); the lock directory is a tmpfs
//! (`/run`), so after a boot the first root of each image takes the report again. A marker
//! that outlived its base (an operator's `lvremove`) only costs a failed `lvcreate`.

use std::path::{Path, PathBuf};

use crate::name::VolumeName;
use crate::size::Bytes;
use crate::volume::Filesystem;

fn path(dir: &Path, base: &VolumeName) -> PathBuf {
    dir.join(format!("{base}.ready"))
}

/// Records that `base` is complete with `size` and `fs`. A marker is only a shortcut: a
/// failure to write it is logged, never an error.
pub fn write(dir: &Path, base: &VolumeName, size: Bytes, fs: Filesystem) {
    let p = path(dir, base);
    let tmp = dir.join(format!("{base}.ready.tmp"));
    let res =
        std::fs::write(&tmp, format!("{} {fs}\n", size.0)).and_then(|_| std::fs::rename(&tmp, &p));
    if let Err(e) = res {
        tracing::warn!(path = %p.display(), error = %e, "cannot write the image base marker");
    }
}

/// The size and filesystem of `base` if its marker says it is complete.
pub fn read(dir: &Path, base: &VolumeName) -> Option<(Bytes, Filesystem)> {
    let text = std::fs::read_to_string(path(dir, base)).ok()?;
    let (size, fs) = text.trim().split_once(' ')?;
    Some((Bytes(size.parse().ok()?), fs.parse().ok()?))
}

/// Removes the marker of `base` (absent = done).
pub fn clear(dir: &Path, base: &VolumeName) -> std::io::Result<()> {
    match std::fs::remove_file(path(dir, base)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_clear() {
        let d = tempfile::tempdir().unwrap();
        let n = VolumeName::new("berth-img-x-1").unwrap();
        assert_eq!(read(d.path(), &n), None);
        write(d.path(), &n, Bytes(300 << 20), Filesystem::Xfs);
        assert_eq!(
            read(d.path(), &n),
            Some((Bytes(300 << 20), Filesystem::Xfs))
        );
        clear(d.path(), &n).unwrap();
        assert_eq!(read(d.path(), &n), None);
        clear(d.path(), &n).unwrap();
        std::fs::write(d.path().join("berth-img-x-1.ready"), "garbage").unwrap();
        assert_eq!(read(d.path(), &n), None, "a torn marker is no marker");
    }
}
