//! Applies layer tars to a directory, safely.
//!
//! Every path is taken relative to the root: absolute paths and `..` are refused, and
//! each parent directory is opened with `openat(O_NOFOLLOW)` from the root's descriptor,
//! so a symlink planted by an earlier entry or layer (`etc -> /`) is never followed: a
//! later `etc/passwd` is refused instead of written outside. Hard links are made with
//! `linkat` between two such resolved paths, so their target is always inside the root.
//! Whiteouts (`.wh.NAME`, opaque `.wh..wh..opq`) remove what lower layers made. Device
//! nodes are skipped (runc makes `/dev`); FIFOs are kept. Modes (setuid included), owners
//! and modification times are kept; extended attributes are not.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("entry {path:?}: {why}")]
    Refused { path: String, why: String },
    #[error("entry {path:?}: {op}: {errno}")]
    Os {
        path: String,
        op: &'static str,
        errno: Errno,
    },
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
}

/// What one layer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub whiteouts: u64,
    /// Device nodes and unknown entry types left out.
    pub skipped: u64,
}

/// A path inside the root: its components (never empty, never `..`).
type Rel = Vec<OsString>;

fn show(rel: &[OsString]) -> String {
    rel.iter()
        .map(|c| c.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Splits an archive path into components; refuses absolute paths and `..`.
pub fn clean(path: &Path) -> Result<Rel, String> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
            Component::ParentDir => return Err("contains ..".into()),
        }
    }
    Ok(out)
}

fn owned(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn open_dir_at(dir: RawFd, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        Some(dir),
        name,
        OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map(owned)
}

/// The root being built, opened once.
pub struct Root {
    fd: OwnedFd,
    /// chown only when we may (root); unprivileged unpacks keep the caller's ids.
    chown: bool,
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = openat(
            None,
            path,
            OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(Root {
            fd: owned(fd),
            chown: nix::unistd::geteuid().is_root(),
        })
    }

    /// Opens the directory `rel` (never through a symlink); missing ones are created
    /// (0755) when `create`.
    fn dir(&self, rel: &[OsString], create: bool) -> Result<OwnedFd, UnpackError> {
        let mut cur =
            open_dir_at(self.fd.as_raw_fd(), OsStr::new(".")).map_err(|errno| UnpackError::Os {
                path: ".".into(),
                op: "open",
                errno,
            })?;
        for (i, c) in rel.iter().enumerate() {
            let next = match open_dir_at(cur.as_raw_fd(), c) {
                Err(Errno::ENOENT) if create => {
                    mkdirat(
                        Some(cur.as_raw_fd()),
                        c.as_os_str(),
                        Mode::from_bits_truncate(0o755),
                    )
                    .map_err(|errno| UnpackError::Os {
                        path: show(&rel[..=i]),
                        op: "mkdir",
                        errno,
                    })?;
                    open_dir_at(cur.as_raw_fd(), c)
                }
                r => r,
            };
            cur = next.map_err(|errno| match errno {
                Errno::ELOOP | Errno::ENOTDIR => UnpackError::Refused {
                    path: show(&rel[..=i]),
                    why: "is not a directory (a symlink is never followed while unpacking)".into(),
                },
                errno => UnpackError::Os {
                    path: show(&rel[..=i]),
                    op: "open",
                    errno,
                },
            })?;
        }
        Ok(cur)
    }
}

fn kind_at(dir: RawFd, name: &OsStr) -> nix::Result<Option<SFlag>> {
    match fstatat(Some(dir), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(SFlag::from_bits_truncate(
            st.st_mode & SFlag::S_IFMT.bits(),
        ))),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn children(dir: &OwnedFd) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))? {
        names.push(e?.file_name());
    }
    Ok(names)
}

/// Removes `name` in `dir`, recursively for a directory, never following a symlink.
fn remove_at(dir: RawFd, name: &OsStr) -> nix::Result<()> {
    match kind_at(dir, name)? {
        None => Ok(()),
        Some(SFlag::S_IFDIR) => {
            let sub = open_dir_at(dir, name)?;
            for c in children(&sub)
                .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?
            {
                remove_at(sub.as_raw_fd(), &c)?;
            }
            unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir)
        }
        Some(_) => unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir),
    }
}

/// An opaque directory: removes every child lower layers made; children this layer made
/// stay, but lower layers' contents inside them go too.
fn hide_lower(dir: &OwnedFd, rel: &[OsString], made: &HashSet<Rel>) -> nix::Result<()> {
    let names =
        children(dir).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    for c in names {
        let mut child = rel.to_vec();
        child.push(c.clone());
        if !made.contains(&child) {
            remove_at(dir.as_raw_fd(), &c)?;
        } else if kind_at(dir.as_raw_fd(), &c)? == Some(SFlag::S_IFDIR) {
            hide_lower(&open_dir_at(dir.as_raw_fd(), &c)?, &child, made)?;
        }
    }
    Ok(())
}

/// Applies one layer's tar stream to `root`.
pub fn apply_layer(root: &Root, tar_stream: impl Read) -> Result<LayerStats, UnpackError> {
    let mut archive = tar::Archive::new(tar_stream);
    let mut stats = LayerStats::default();
    // Paths this layer made: whiteouts and opaque dirs only hide lower layers' files.
    let mut made: HashSet<Rel> = HashSet::new();
    // Directory mtimes are set at the end (adding entries changes them).
    let mut dir_times: Vec<(Rel, u64)> = Vec::new();
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
        let rel = clean(&raw).map_err(|why| UnpackError::Refused {
            path: raw.to_string_lossy().into_owned(),
            why,
        })?;
        stats.entries += 1;
        let Some((name, parents)) = rel.split_last() else {
            continue; // the root itself
        };
        let at = |op: &'static str| {
            let p = show(&rel);
            move |errno| UnpackError::Os { path: p, op, errno }
        };
        let name_bytes = name.as_bytes();
        if name_bytes != OPAQUE.as_bytes() {
            if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT.as_bytes()) {
                stats.whiteouts += 1;
                let hidden = OsStr::from_bytes(hidden);
                let mut target = parents.to_vec();
                target.push(hidden.to_os_string());
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(UnpackError::Refused {
                        path: show(&rel),
                        why: "bad whiteout".into(),
                    });
                }
                // Nothing to delete under a directory that is not there.
                let dir = match root.dir(parents, false) {
                    Err(UnpackError::Os {
                        errno: Errno::ENOENT,
                        ..
                    }) => continue,
                    r => r?,
                };
                if !made.contains(&target) {
                    remove_at(dir.as_raw_fd(), hidden).map_err(at("remove (whiteout)"))?;
                }
                continue;
            }
        }
        let dir = root.dir(parents, true)?;
        let d = dir.as_raw_fd();
        if name_bytes == OPAQUE.as_bytes() {
            stats.whiteouts += 1;
            hide_lower(&dir, parents, &made).map_err(at("remove (opaque)"))?;
            continue;
        }
        // The entry and its parents count as this layer's (an opaque marker later in the
        // layer keeps them, and hides only what lower layers left inside them).
        for i in 1..=rel.len() {
            made.insert(rel[..i].to_vec());
        }
        let header = entry.header().clone();
        let mode = Mode::from_bits_truncate(header.mode().map_err(UnpackError::Read)? & 0o7777);
        let uid = header.uid().map_err(UnpackError::Read)?;
        let gid = header.gid().map_err(UnpackError::Read)?;
        let mtime = header.mtime().unwrap_or(0);
        let kind = header.entry_type();
        let existing = kind_at(d, name).map_err(at("stat"))?;
        let chown = |flags: AtFlags| -> Result<(), UnpackError> {
            if !root.chown {
                return Ok(());
            }
            let (u, g) = (
                u32::try_from(uid)
                    .map_err(|_| Errno::EINVAL)
                    .map_err(at("chown"))?,
                u32::try_from(gid)
                    .map_err(|_| Errno::EINVAL)
                    .map_err(at("chown"))?,
            );
            fchownat(
                Some(d),
                name.as_os_str(),
                Some(Uid::from_raw(u)),
                Some(Gid::from_raw(g)),
                flags,
            )
            .map_err(at("chown"))
        };
        let times = |flags: UtimensatFlags| -> Result<(), UnpackError> {
            let t = TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
            utimensat(Some(d), name.as_os_str(), &t, &t, flags).map_err(at("utimensat"))
        };
        use tar::EntryType as E;
        match kind {
            E::Directory => {
                if existing.is_some_and(|k| k != SFlag::S_IFDIR) {
                    remove_at(d, name).map_err(at("replace"))?;
                }
                if existing != Some(SFlag::S_IFDIR) {
                    mkdirat(Some(d), name.as_os_str(), Mode::from_bits_truncate(0o700))
                        .map_err(at("mkdir"))?;
                }
                chown(AtFlags::AT_SYMLINK_NOFOLLOW)?;
                let sub = open_dir_at(d, name).map_err(at("open"))?;
                fchmod(sub.as_raw_fd(), mode).map_err(at("chmod"))?;
                dir_times.push((rel.clone(), mtime));
            }
            E::Regular | E::Continuous | E::GNUSparse => {
                remove_at(d, name).map_err(at("replace"))?;
                let fd = openat(
                    Some(d),
                    name.as_os_str(),
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map(owned)
                .map_err(at("create"))?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(UnpackError::Read)?;
                chown(AtFlags::AT_SYMLINK_NOFOLLOW)?;
                // After chown, which clears setuid/setgid bits.
                fchmod(file.as_raw_fd(), mode).map_err(at("chmod"))?;
                times(UtimensatFlags::NoFollowSymlink)?;
            }
            E::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| UnpackError::Refused {
                        path: show(&rel),
                        why: "symlink without a target".into(),
                    })?
                    .into_owned();
                remove_at(d, name).map_err(at("replace"))?;
                symlinkat(target.as_path(), Some(d), name.as_os_str()).map_err(at("symlink"))?;
                chown(AtFlags::AT_SYMLINK_NOFOLLOW)?;
                times(UtimensatFlags::NoFollowSymlink)?;
            }
            E::Link => {
                let raw_target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .ok_or_else(|| UnpackError::Refused {
                        path: show(&rel),
                        why: "hard link without a target".into(),
                    })?
                    .into_owned();
                let target = clean(&raw_target).map_err(|why| UnpackError::Refused {
                    path: show(&rel),
                    why: format!("hard link target {raw_target:?}: {why}"),
                })?;
                let Some((tname, tparents)) = target.split_last() else {
                    return Err(UnpackError::Refused {
                        path: show(&rel),
                        why: "hard link to the root".into(),
                    });
                };
                if target == rel {
                    continue;
                }
                let tdir = root.dir(tparents, false)?;
                match kind_at(tdir.as_raw_fd(), tname) {
                    Ok(Some(k)) if k != SFlag::S_IFDIR => {}
                    _ => {
                        return Err(UnpackError::Refused {
                            path: show(&rel),
                            why: format!(
                                "hard link target {} is not a file in the image",
                                show(&target)
                            ),
                        })
                    }
                }
                remove_at(d, name).map_err(at("replace"))?;
                linkat(
                    Some(tdir.as_raw_fd()),
                    tname.as_os_str(),
                    Some(d),
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(at("link"))?;
            }
            E::Fifo => {
                remove_at(d, name).map_err(at("replace"))?;
                mknodat(
                    Some(d),
                    name.as_os_str(),
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(at("mkfifo"))?;
                chown(AtFlags::AT_SYMLINK_NOFOLLOW)?;
                // The FIFO was just made here by us: no symlink can stand in its place.
                fchmodat(
                    Some(d),
                    name.as_os_str(),
                    mode,
                    FchmodatFlags::FollowSymlink,
                )
                .map_err(at("chmod"))?;
                times(UtimensatFlags::NoFollowSymlink)?;
            }
            _ => {
                // Character and block devices (runc makes /dev), and anything unknown.
                made.remove(&rel);
                stats.skipped += 1;
            }
        }
    }
    for (rel, mtime) in dir_times.iter().rev() {
        let Some((name, parents)) = rel.split_last() else {
            continue;
        };
        let dir = root.dir(parents, false)?;
        let t = TimeSpec::new(i64::try_from(*mtime).unwrap_or(0), 0);
        utimensat(
            Some(dir.as_raw_fd()),
            name.as_os_str(),
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|errno| UnpackError::Os {
            path: show(rel),
            op: "utimensat",
            errno,
        })?;
    }
    Ok(stats)
}
