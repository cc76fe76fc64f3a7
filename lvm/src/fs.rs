//! Filesystems on volumes: mkfs, online grow, mount, unmount, and reading the mount table.
//!
//! Everything runs the standard tools through a [`Runner`]; the mount table is read from a
//! `mountinfo` path given by the caller so tests can feed their own.

use std::path::{Path, PathBuf};

use crate::exec::{Cmd, ExecError, MountCall, Runner};
use crate::volume::Filesystem;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("mkfs.{fs} on {dev}")]
    Mkfs {
        fs: Filesystem,
        dev: PathBuf,
        #[source]
        err: ExecError,
    },
    #[error("growing {fs} on {dev}")]
    Grow {
        fs: Filesystem,
        dev: PathBuf,
        #[source]
        err: ExecError,
    },
    #[error(
        "growing {dev} online needs {cap}, which this process lacks (unmount to grow offline)"
    )]
    NeedsCapability {
        dev: PathBuf,
        cap: &'static str,
        #[source]
        err: ExecError,
    },
    #[error("mounting {dev} at {target}")]
    Mount {
        dev: PathBuf,
        target: PathBuf,
        #[source]
        err: ExecError,
    },
    #[error("unmounting {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        err: ExecError,
    },
    #[error("reading {path}")]
    MountTable {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("making mount point {path}")]
    MountPoint {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
}

/// The mkfs command for `fs` on `dev`: quiet, forced (the device may hold an old signature
/// from a crashed create), no discard (slow on thin and loop, and pointless on new space).
/// ext4's geometry is explicit (4 KiB blocks, one 256-byte inode per 16 KiB, no root
/// reserve) so that [`Filesystem::device_size`](crate::volume::Filesystem::device_size)
/// holds whatever the host's mke2fs.conf says.
pub fn mkfs_cmd(fs: Filesystem, dev: &Path) -> Cmd {
    let dev = dev.display().to_string();
    match fs {
        Filesystem::Ext4 => Cmd::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-i", "16384", "-I", "256"])
            .args(["-E", "nodiscard,lazy_itable_init=1", "-m", "0"])
            .arg(dev),
        Filesystem::Xfs => Cmd::new("mkfs.xfs").args(["-q", "-f", "-K"]).arg(dev),
    }
}

pub fn mkfs(run: &dyn Runner, fs: Filesystem, dev: &Path) -> Result<(), FsError> {
    run.check(&mkfs_cmd(fs, dev))
        .map(drop)
        .map_err(|err| FsError::Mkfs {
            fs,
            dev: dev.into(),
            err,
        })
}

/// The grow command: ext4 grows through the device, xfs through its mount point.
pub fn grow_cmd(fs: Filesystem, dev: &Path, mountpoint: &Path) -> Cmd {
    match fs {
        Filesystem::Ext4 => Cmd::new("resize2fs").arg(dev.display().to_string()),
        Filesystem::Xfs => Cmd::new("xfs_growfs").arg(mountpoint.display().to_string()),
    }
}

/// Grows the filesystem on `dev` to fill it, preferably online: a mounted filesystem in
/// place, an unmounted one on a private temporary mount (xfs can only grow mounted; for ext4
/// this avoids a full `e2fsck -f`, which takes long on a populated filesystem). Online ext4
/// growth needs CAP_SYS_RESOURCE; without it an unmounted ext4 is checked and grown offline.
pub fn grow(run: &dyn Runner, mountinfo: &Path, fs: Filesystem, dev: &Path) -> Result<(), FsError> {
    let grow_err = |err: ExecError| {
        if err.to_string().contains("Permission denied to resize") {
            FsError::NeedsCapability {
                dev: dev.into(),
                cap: "CAP_SYS_RESOURCE",
                err,
            }
        } else {
            FsError::Grow {
                fs,
                dev: dev.into(),
                err,
            }
        }
    };
    if let Some(mp) = mountpoints_of(mountinfo, dev)?.into_iter().next() {
        return run
            .check(&grow_cmd(fs, dev, &mp))
            .map(drop)
            .map_err(grow_err);
    }
    let tmp = tempfile::Builder::new()
        .prefix("berth-grow.")
        .tempdir()
        .map_err(|err| FsError::MountPoint {
            path: std::env::temp_dir(),
            err,
        })?;
    // nouuid: an xfs thin snapshot shares its UUID with its base and sibling snapshots.
    let opts = if fs == Filesystem::Xfs {
        "rw,nouuid"
    } else {
        "rw"
    };
    mount(run, fs, dev, tmp.path(), opts)?;
    let res = run
        .check(&grow_cmd(fs, dev, tmp.path()))
        .map(drop)
        .map_err(grow_err);
    unmount(run, mountinfo, tmp.path())?;
    match res {
        Err(FsError::NeedsCapability { .. }) if fs == Filesystem::Ext4 => {
            grow_ext4_offline(run, dev, grow_err)
        }
        other => other,
    }
}

fn grow_ext4_offline(
    run: &dyn Runner,
    dev: &Path,
    grow_err: impl Fn(ExecError) -> FsError,
) -> Result<(), FsError> {
    let out = run.run(&fsck_cmd(dev)).map_err(&grow_err)?;
    // e2fsck: 0 clean, 1 errors fixed; anything else means the grow must not go on.
    if !matches!(out.code, Some(0) | Some(1)) {
        return Err(grow_err(ExecError::Failed {
            cmd: fsck_cmd(dev).to_string(),
            code: out.code,
            stderr: out.stderr_text(),
        }));
    }
    run.check(&grow_cmd(Filesystem::Ext4, dev, Path::new("/")))
        .map(drop)
        .map_err(grow_err)
}

pub fn fsck_cmd(dev: &Path) -> Cmd {
    Cmd::new("e2fsck")
        .args(["-f", "-y"])
        .arg(dev.display().to_string())
}

pub fn mount_call(fs: Filesystem, dev: &Path, target: &Path, opts: &str) -> MountCall {
    MountCall {
        fstype: fs.as_str().into(),
        source: dev.into(),
        target: target.into(),
        options: opts.into(),
    }
}

pub fn mount(
    run: &dyn Runner,
    fs: Filesystem,
    dev: &Path,
    target: &Path,
    opts: &str,
) -> Result<(), FsError> {
    std::fs::create_dir_all(target).map_err(|err| FsError::MountPoint {
        path: target.into(),
        err,
    })?;
    run.mount(&mount_call(fs, dev, target, opts))
        .map_err(|err| FsError::Mount {
            dev: dev.into(),
            target: target.into(),
            err,
        })
}

/// Unmounts `target`; a target that is not a mount point is a success.
pub fn unmount(run: &dyn Runner, mountinfo: &Path, target: &Path) -> Result<(), FsError> {
    let canon = target
        .canonicalize()
        .unwrap_or_else(|_| target.to_path_buf());
    if !read_mounts(mountinfo)?.iter().any(|m| m.target == canon) {
        return Ok(());
    }
    run.check(&Cmd::new("umount").arg(canon.display().to_string()))
        .map(drop)
        .map_err(|err| FsError::Unmount {
            target: target.into(),
            err,
        })
}

/// One line of `/proc/self/mountinfo` (the fields berth needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    pub target: PathBuf,
    pub source: String,
    pub major_minor: (u32, u32),
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let dash = f.iter().position(|x| *x == "-")?;
            let (maj, min) = f.get(2)?.split_once(':')?;
            Some(MountEntry {
                target: PathBuf::from(unescape(f.get(4)?)),
                source: unescape(f.get(dash + 2)?),
                major_minor: (maj.parse().ok()?, min.parse().ok()?),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn read_mounts(mountinfo: &Path) -> Result<Vec<MountEntry>, FsError> {
    let text = std::fs::read_to_string(mountinfo).map_err(|err| FsError::MountTable {
        path: mountinfo.into(),
        err,
    })?;
    Ok(parse_mountinfo(&text))
}

/// Where the block device `dev` is mounted, matched by device number (so `/dev/vg/lv`,
/// `/dev/mapper/vg-lv` and `/dev/dm-3` all match).
pub fn mountpoints_of(mountinfo: &Path, dev: &Path) -> Result<Vec<PathBuf>, FsError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dev) else {
        return Ok(Vec::new());
    };
    let rdev = meta.rdev();
    let want = (libc::major(rdev), libc::minor(rdev));
    Ok(read_mounts(mountinfo)?
        .into_iter()
        .filter(|m| m.major_minor == want)
        .map(|m| m.target)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_built_exactly() {
        assert_eq!(
            mkfs_cmd(Filesystem::Ext4, Path::new("/dev/vg/lv")).to_string(),
            "mkfs.ext4 -q -F -b 4096 -i 16384 -I 256 -E nodiscard,lazy_itable_init=1 -m 0 /dev/vg/lv"
        );
        assert_eq!(
            mkfs_cmd(Filesystem::Xfs, Path::new("/dev/vg/lv")).to_string(),
            "mkfs.xfs -q -f -K /dev/vg/lv"
        );
        assert_eq!(
            grow_cmd(Filesystem::Ext4, Path::new("/dev/a"), Path::new("/m")).to_string(),
            "resize2fs /dev/a"
        );
        assert_eq!(
            grow_cmd(Filesystem::Xfs, Path::new("/dev/a"), Path::new("/m")).to_string(),
            "xfs_growfs /m"
        );
        assert_eq!(
            mount_call(
                Filesystem::Xfs,
                Path::new("/dev/a"),
                Path::new("/m n"),
                "rw,noatime"
            )
            .cmd()
            .args,
            vec!["-t", "xfs", "-o", "rw,noatime", "/dev/a", "/m n"]
        );
    }

    #[test]
    fn mountinfo_parses_and_unescapes() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    37 35 7:3 / /home/x rw shared:2 - ext4 /dev/loop3 rw\n\
                    garbage line\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].target, PathBuf::from("/mnt/with space"));
        assert_eq!(m[0].source, "/dev/root");
        assert_eq!(m[1].major_minor, (7, 3));
        assert_eq!(m[1].source, "/dev/loop3");
    }
}
