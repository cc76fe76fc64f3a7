//! A service's log file: a pipe whose write end becomes the service's stdout and stderr,
//! and a thread that copies it into the file, rotating at a size (`file`, `file.1`, ...).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Renames `path.N` to `path.N+1` (dropping those past `keep`) and `path` to `path.1`.
pub fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    match std::fs::rename(path, numbered(1)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn open(path: &Path) -> io::Result<(File, u64)> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let f = OpenOptions::new().create(true).append(true).open(path)?;
    let len = f.metadata()?.len();
    Ok((f, len))
}

/// Copies `reader` into `path` until EOF, rotating when the file passes `max_size`.
pub fn copy_rotating(
    mut reader: impl Read,
    path: &Path,
    max_size: u64,
    keep: u32,
) -> io::Result<()> {
    let (mut file, mut size) = open(path)?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if size > 0 && size + n as u64 > max_size {
            drop(file);
            rotate(path, keep)?;
            (file, size) = open(path)?;
        }
        file.write_all(&buf[..n])?;
        size += n as u64;
    }
}

/// Opens a pipe for a service's output and starts the copying thread; returns the write
/// end (give it to the child as stdout and stderr, then drop it).
pub fn start(path: PathBuf, max_size: u64, keep: u32) -> io::Result<OwnedFd> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    std::thread::Builder::new()
        .name("berth-log".into())
        .spawn(move || {
            if let Err(e) = copy_rotating(File::from(r), &path, max_size, keep) {
                tracing::warn!(path = %path.display(), error = %e, "log file writing stopped");
            }
        })?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("svc.log");
        // Reads come in 16 KiB chunks; 10 chunks of 1000 bytes with max 2500: rotations.
        struct Chunks(u32);
        impl Read for Chunks {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Ok(0);
                }
                self.0 -= 1;
                buf[..1000].fill(b'x');
                Ok(1000)
            }
        }
        copy_rotating(Chunks(10), &path, 2500, 2).unwrap();
        let len = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).ok();
        assert_eq!(len(path.clone()), Some(2000));
        assert_eq!(len(dir.path().join("svc.log.1")), Some(2000));
        assert_eq!(len(dir.path().join("svc.log.2")), Some(2000));
        assert_eq!(len(dir.path().join("svc.log.3")), None);
    }
}
