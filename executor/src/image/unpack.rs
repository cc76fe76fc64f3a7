//! Applies layer tars to a directory, safely.
//!
//! Entry names are cleaned as Docker does: a leading `/` is dropped (names are relative to
//! the root), `.` is skipped, `a/../b` is `b`; a name whose `..` climbs above the root is
//! refused. Each parent directory is then resolved *inside* the root, component by
//! component from the root's descriptor, like `openat2(RESOLVE_IN_ROOT)` or Go's
//! securejoin: every component is opened with `O_NOFOLLOW`, a symlink met on the way is
//! read (`readlinkat`) and its target walked instead, an absolute target from the root,
//! `..` never above the root, at most 40 symlinks per path (a loop is refused). So an
//! image with `lib -> usr/lib` (usrmerge) or `var/run -> /run` (Debian) gets its later
//! `lib/libfoo.so` in `usr/lib/`, and `etc -> /` or `etc -> ../../..` then `etc/passwd`
//! writes the root's own `etc/passwd`, never outside. The entry's own last component is
//! never followed: an existing entry is unlinked and replaced. Hard links are made with
//! `linkat` from a target resolved the same way (its last component not followed), and
//! whiteouts (`.wh.NAME`, opaque `.wh..wh..opq`) remove what lower layers made through the
//! same resolution. Device nodes are skipped (runc makes `/dev`); FIFOs are kept. Modes
//! (setuid included), owners and modification times are kept; extended attributes are not.

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use super::limits::{Budget, Charged};

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Most symlinks followed while resolving one path (Linux's own limit).
pub const MAX_SYMLINKS: usize = 40;

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
    #[error("{0}")]
    Limit(String),
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

/// Splits an archive path into clean components, as Docker does (`filepath.Clean`): a
/// leading `/` is dropped (names are relative to the root), `.` is skipped, `..` removes the
/// component before it; a `..` that would climb above the root of a relative name is
/// refused (Docker's "breakout"), and one at the root of an absolute name stays there.
pub fn clean(path: &Path) -> Result<Rel, String> {
    let mut out: Rel = Vec::new();
    let mut rooted = false;
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => rooted = true,
            Component::ParentDir => {
                if out.pop().is_none() && !rooted {
                    return Err("climbs above the root with ..".into());
                }
            }
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

    fn open_root(&self) -> nix::Result<OwnedFd> {
        open_dir_at(self.fd.as_raw_fd(), OsStr::new("."))
    }

    /// Opens the directory `rel` resolved inside the root (see the module doc): symlinks
    /// on the way are followed as if the root were `/`; missing directories are created
    /// (0755) when `create`. Returns it with its resolved path.
    pub fn dir(&self, rel: &[OsString], create: bool) -> Result<Dir, UnpackError> {
        let shown = || show(rel);
        let os = |op: &'static str| {
            move |errno| UnpackError::Os {
                path: show(rel),
                op,
                errno,
            }
        };
        let mut cur = self.open_root().map_err(os("open"))?;
        let mut path: Rel = Vec::new();
        let mut todo: VecDeque<OsString> = rel.iter().cloned().collect();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                // Never above the root; the path so far holds no symlink: reopen it.
                if path.pop().is_some() {
                    cur = self.open_resolved(&path).map_err(os("open"))?;
                }
                continue;
            }
            let fd = cur.as_raw_fd();
            match kind_at(fd, &c).map_err(os("stat"))? {
                Some(SFlag::S_IFDIR) => {}
                Some(SFlag::S_IFLNK) => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(UnpackError::Refused {
                            path: shown(),
                            why: format!(
                                "more than {MAX_SYMLINKS} symlinks on the way (a symlink loop?)"
                            ),
                        });
                    }
                    let target = readlinkat(Some(fd), c.as_os_str()).map_err(os("readlink"))?;
                    let target = Path::new(&target);
                    if target.has_root() {
                        cur = self.open_root().map_err(os("open"))?;
                        path.clear();
                    }
                    for t in target.components().rev() {
                        match t {
                            Component::Normal(n) => todo.push_front(n.to_os_string()),
                            Component::ParentDir => todo.push_front("..".into()),
                            _ => {}
                        }
                    }
                    continue;
                }
                Some(_) => {
                    let mut at = path.clone();
                    at.push(c);
                    return Err(UnpackError::Refused {
                        path: shown(),
                        why: format!("{} is not a directory", show(&at)),
                    });
                }
                None if create => {
                    match mkdirat(Some(fd), c.as_os_str(), Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(errno) => return Err(os("mkdir")(errno)),
                    }
                }
                None => return Err(os("open")(Errno::ENOENT)),
            }
            cur = open_dir_at(fd, &c).map_err(os("open"))?;
            path.push(c);
        }
        Ok(Dir { fd: cur, path })
    }

    /// Is `rel` a regular file, every symlink (the last component's too) resolved inside
    /// the root? Anything unresolvable is `false`.
    pub fn is_file(&self, rel: &[OsString]) -> bool {
        let mut rel = rel.to_vec();
        for _ in 0..=MAX_SYMLINKS {
            let Some((name, parents)) = rel.split_last() else {
                return false;
            };
            let Ok(dir) = self.dir(parents, false) else {
                return false;
            };
            match kind_at(dir.fd.as_raw_fd(), name) {
                Ok(Some(SFlag::S_IFREG)) => return true,
                Ok(Some(SFlag::S_IFLNK)) => {
                    let Ok(target) = readlinkat(Some(dir.fd.as_raw_fd()), name.as_os_str()) else {
                        return false;
                    };
                    let target = Path::new(&target);
                    let mut next = if target.has_root() {
                        Vec::new()
                    } else {
                        dir.path
                    };
                    next.extend(target.components().filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    }));
                    rel = next;
                }
                _ => return false,
            }
        }
        false
    }

    /// Opens a path already resolved (no symlink in it), never following one.
    fn open_resolved(&self, path: &[OsString]) -> nix::Result<OwnedFd> {
        let mut cur = self.open_root()?;
        for c in path {
            cur = open_dir_at(cur.as_raw_fd(), c)?;
        }
        Ok(cur)
    }
}

/// A directory inside the root: its descriptor and its path with every symlink resolved.
pub struct Dir {
    pub fd: OwnedFd,
    pub path: Rel,
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

/// Applies one layer's tar stream to `root`; its entries (and a sparse file's expanded
/// size) count against `budget`.
pub fn apply_layer(
    root: &Root,
    tar_stream: impl Read,
    budget: &Budget,
) -> Result<LayerStats, UnpackError> {
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
        budget.entry().map_err(UnpackError::Limit)?;
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
                let mut target = dir.path.clone();
                target.push(hidden.to_os_string());
                if !made.contains(&target) {
                    remove_at(dir.fd.as_raw_fd(), hidden).map_err(at("remove (whiteout)"))?;
                }
                continue;
            }
        }
        let dir = root.dir(parents, true)?;
        let d = dir.fd.as_raw_fd();
        if name_bytes == OPAQUE.as_bytes() {
            stats.whiteouts += 1;
            hide_lower(&dir.fd, &dir.path, &made).map_err(at("remove (opaque)"))?;
            continue;
        }
        // Where the entry really is (its parents' symlinks resolved).
        let mut full = dir.path.clone();
        full.push(name.clone());
        // The entry and its parents count as this layer's (an opaque marker later in the
        // layer keeps them, and hides only what lower layers left inside them).
        for i in 1..=full.len() {
            made.insert(full[..i].to_vec());
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
                dir_times.push((full.clone(), mtime));
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
                if kind == E::GNUSparse {
                    // Holes are written as zeros: count the full size as it is written.
                    let mut charged = Charged {
                        inner: &mut entry,
                        budget,
                    };
                    io::copy(&mut charged, &mut file).map_err(UnpackError::Read)?;
                } else {
                    io::copy(&mut entry, &mut file).map_err(UnpackError::Read)?;
                }
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
                let not_in_image = || UnpackError::Refused {
                    path: show(&rel),
                    why: format!(
                        "hard link target {} is not a file in the image",
                        show(&target)
                    ),
                };
                let tdir = match root.dir(tparents, false) {
                    Err(UnpackError::Os {
                        errno: Errno::ENOENT,
                        ..
                    }) => return Err(not_in_image()),
                    r => r?,
                };
                if tdir.path == dir.path && tname == name {
                    continue;
                }
                match kind_at(tdir.fd.as_raw_fd(), tname) {
                    Ok(Some(k)) if k != SFlag::S_IFDIR => {}
                    _ => return Err(not_in_image()),
                }
                remove_at(d, name).map_err(at("replace"))?;
                linkat(
                    Some(tdir.fd.as_raw_fd()),
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
                made.remove(&full);
                stats.skipped += 1;
            }
        }
    }
    for (rel, mtime) in dir_times.iter().rev() {
        let Some((name, parents)) = rel.split_last() else {
            continue;
        };
        // A later entry of the layer may have replaced the directory or a parent.
        let Ok(dir) = root.open_resolved(parents) else {
            continue;
        };
        let t = TimeSpec::new(i64::try_from(*mtime).unwrap_or(0), 0);
        match utimensat(
            Some(dir.as_raw_fd()),
            name.as_os_str(),
            &t,
            &t,
            UtimensatFlags::NoFollowSymlink,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(errno) => {
                return Err(UnpackError::Os {
                    path: show(rel),
                    op: "utimensat",
                    errno,
                })
            }
        }
    }
    Ok(stats)
}
