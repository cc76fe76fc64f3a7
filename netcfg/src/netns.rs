//! Network namespaces: create a named one like `ip netns add`, open one by path, delete,
//! list berth's for GC, and run a future inside one on a dedicated thread.
//!
//! A netns is pinned by a bind mount of `/proc/thread-self/ns/net` on an empty file under
//! the run dir (`/run/netns`), exactly as iproute2 does, so `ip netns` sees berth's
//! namespaces and the other way round. The run dir itself is made a shared mount so the
//! pins propagate to mount namespaces cloned later (runc's).
//!
//! Namespaces are per thread: [`run_in`] moves a fresh OS thread into the netns, builds a
//! current-thread tokio runtime there and drives the future to completion, so netlink
//! sockets and UDP sockets opened by the future belong to that netns while the caller's
//! threads never change namespace.

use std::fs::File;
use std::future::Future;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::names::NetnsName;

/// Where iproute2 keeps named namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// Errors of netns handling.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("failed to {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("failed to {what} for netns {path}")]
    Sys {
        what: &'static str,
        path: PathBuf,
        #[source]
        err: nix::Error,
    },
    #[error("netns {path} already exists")]
    Exists { path: PathBuf },
    #[error("the thread running inside netns {path} panicked or could not start")]
    Thread { path: PathBuf },
}

impl NetnsError {
    /// The path was opened but is not a network namespace (setns said EINVAL).
    pub fn is_not_a_netns(&self) -> bool {
        matches!(
            self,
            NetnsError::Sys {
                what: "setns",
                err: nix::Error::EINVAL,
                ..
            }
        )
    }
}

/// An open network namespace (keeps the fd; the namespace lives while the fd is open).
#[derive(Debug)]
pub struct Netns {
    file: File,
    path: PathBuf,
}

impl Netns {
    /// Open the namespace pinned at `path` (e.g. `/run/netns/x` or `/proc/<pid>/ns/net`).
    pub fn open(path: &Path) -> Result<Self, NetnsError> {
        let file = File::open(path).map_err(|err| NetnsError::Io {
            what: "open netns",
            path: path.to_path_buf(),
            err,
        })?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// The calling thread's current namespace.
    pub fn current() -> Result<Self, NetnsError> {
        Self::open(Path::new("/proc/thread-self/ns/net"))
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw fd (for IFLA_NET_NS_FD).
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Borrow the fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// A second handle on the same namespace (to move into another thread).
    pub fn try_clone(&self) -> Result<Self, NetnsError> {
        let file = self.file.try_clone().map_err(|err| NetnsError::Io {
            what: "dup fd of netns",
            path: self.path.clone(),
            err,
        })?;
        Ok(Self {
            file,
            path: self.path.clone(),
        })
    }
}

fn make_run_dir_shared(dir: &Path) -> Result<(), NetnsError> {
    std::fs::create_dir_all(dir).map_err(|err| NetnsError::Io {
        what: "create netns run dir",
        path: dir.to_path_buf(),
        err,
    })?;
    let sys = |what, err| NetnsError::Sys {
        what,
        path: dir.to_path_buf(),
        err,
    };
    // As iproute2: try to make it shared; if it is not a mount point yet, bind it on itself.
    match mount(
        None::<&str>,
        dir,
        Some("none"),
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    ) {
        Ok(()) => Ok(()),
        Err(nix::Error::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| sys("bind-mount the run dir on itself", e))?;
            mount(
                None::<&str>,
                dir,
                Some("none"),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| sys("make the run dir a shared mount", e))
        }
        Err(e) => Err(sys("make the run dir a shared mount", e)),
    }
}

/// Create the named netns `dir/name` (like `ip netns add`) and return it opened.
/// Fails with [`NetnsError::Exists`] if it already exists.
pub async fn create(dir: &Path, name: &NetnsName) -> Result<Netns, NetnsError> {
    make_run_dir_shared(dir)?;
    let path = dir.join(name.as_str());
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::AlreadyExists => NetnsError::Exists { path: path.clone() },
            _ => NetnsError::Io {
                what: "create netns pin file",
                path: path.clone(),
                err,
            },
        })?;
    let p = path.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let r = (|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|err| NetnsError::Sys {
                what: "unshare",
                path: p.clone(),
                err,
            })?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &p,
                Some("none"),
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|err| NetnsError::Sys {
                what: "bind-mount",
                path: p.clone(),
                err,
            })
        })();
        let _ = tx.send(r);
    });
    let r = rx
        .await
        .unwrap_or(Err(NetnsError::Thread { path: path.clone() }));
    if let Err(e) = r {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Netns::open(&path)
}

/// Delete the named netns `dir/name`. Absent is success (idempotent).
pub fn delete(dir: &Path, name: &NetnsName) -> Result<(), NetnsError> {
    let path = dir.join(name.as_str());
    match umount2(&path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::ENOENT) | Err(nix::Error::EINVAL) => {}
        Err(err) => {
            return Err(NetnsError::Sys {
                what: "unmount",
                path,
                err,
            })
        }
    }
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(NetnsError::Io {
            what: "remove netns pin file",
            path,
            err,
        }),
    }
}

/// The namespaces berth made under `dir` (names with berth's prefix), for GC.
pub fn list_berths(dir: &Path) -> Result<Vec<NetnsName>, NetnsError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(NetnsError::Io {
                what: "list",
                path: dir.to_path_buf(),
                err,
            })
        }
    };
    let mut out: Vec<NetnsName> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| NetnsName::new(n).ok()))
        .filter(NetnsName::is_berths)
        .collect();
    out.sort();
    Ok(out)
}

/// Run the future made by `f` inside `ns`, on a dedicated OS thread with its own
/// current-thread tokio runtime; await its output from any runtime.
pub async fn run_in<F, Fut, T>(ns: &Netns, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.try_clone()?;
    let path = ns.path().to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-netns".into())
        .spawn(move || {
            let r = enter_and_block(&ns, f);
            let _ = tx.send(r);
        })
        .map_err(|_| NetnsError::Thread { path: path.clone() })?;
    rx.await.unwrap_or(Err(NetnsError::Thread { path }))
}

fn enter_and_block<F, Fut, T>(ns: &Netns, f: F) -> Result<T, NetnsError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    setns(ns.fd(), CloneFlags::CLONE_NEWNET).map_err(|err| NetnsError::Sys {
        what: "setns",
        path: ns.path().to_path_buf(),
        err,
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| NetnsError::Io {
            what: "build a runtime",
            path: ns.path().to_path_buf(),
            err,
        })?;
    Ok(rt.block_on(f()))
}
