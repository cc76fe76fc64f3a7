//! Shared pieces of berth-lvm's privileged tests: root check, unique names, and a guard that
//! unmounts and detaches everything a test made under its own directory, even on panic.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn assert_root() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "this test needs root (loop devices, mount, lvm): run it as root, as scripts/test.sh does"
    );
}

/// A name unique to this process and call, e.g. `t123-4`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A scratch directory that on drop lazily unmounts every mount under it and detaches every
/// loop device backed by a file under it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(base: &Path) -> Self {
        std::fs::create_dir_all(base).unwrap();
        Scratch {
            dir: tempfile::Builder::new()
                .prefix(&unique("berth-lvm-"))
                .tempdir_in(base)
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn mounts(&self) -> Vec<PathBuf> {
        let root = self.path().canonicalize().unwrap();
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        berth_lvm::fs::parse_mountinfo(&text)
            .into_iter()
            .map(|m| m.target)
            .filter(|t| t.starts_with(&root))
            .collect()
    }

    pub fn loops(&self) -> Vec<PathBuf> {
        let root = self.path().canonicalize().unwrap();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
                if Path::new(b.trim_end()).starts_with(&root) {
                    out.push(PathBuf::from(format!("/dev/{n}")));
                }
            }
        }
        out
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        for l in self.loops() {
            let _ = Command::new("losetup").arg("-d").arg(&l).status();
        }
    }
}

/// Runs the `berth-vol` binary with `args` (and extra env), returning its output.
pub fn berth_vol(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth-vol"));
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Size of the filesystem mounted at `p`.
pub fn fs_size(p: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(p).unwrap();
    st.blocks() * st.fragment_size()
}

/// Space available to a user on the filesystem mounted at `p` (what `df` shows).
pub fn fs_avail(p: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(p).unwrap();
    st.blocks_available() * st.fragment_size()
}

/// The loop file's size for a request of `mib` MiB usable on `fs`.
pub fn device(fs: berth_lvm::Filesystem, mib: u64) -> berth_lvm::Bytes {
    fs.device_size(berth_lvm::Bytes::mib(mib)).round_up(1 << 20)
}

/// Waits (up to 5 s) until no loop device is backed by a file under `s`: the kernel clears an
/// autoclear loop device shortly after its last user goes, not always before umount returns.
pub fn wait_no_loops(s: &Scratch) -> Vec<PathBuf> {
    let t = std::time::Instant::now();
    loop {
        let l = s.loops();
        if l.is_empty() || t.elapsed() > std::time::Duration::from_secs(5) {
            return l;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
