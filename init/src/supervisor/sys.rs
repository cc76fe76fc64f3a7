//! The real [`Os`]: the core's `Spawn` (own process group, inherited signal state
//! restored), `kill(-pgid, ...)`, and probe threads that report through the [`Waker`].

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::os::{Launch, Os};
use super::wake::{Msg, Waker};
use crate::health::probe;
use crate::signals::InheritedSignals;
use crate::spawn::{Credentials, Spawn};
use crate::spec::{LogSpec, Probe};

/// The system.
pub struct SysOs {
    inherited: InheritedSignals,
    waker: Waker,
}

impl SysOs {
    /// With the signal state to restore in children and the loop's waker.
    pub fn new(inherited: InheritedSignals, waker: Waker) -> Self {
        SysOs { inherited, waker }
    }
}

impl Os for SysOs {
    fn spawn(&mut self, launch: &Launch) -> io::Result<i32> {
        let to_io = |e: crate::spawn::SpawnError| io::Error::other(crate::log::chain(&e));
        let mut cmd = Spawn::new(&launch.argv)
            .map_err(to_io)?
            .process_group(true)
            .close_other_fds(true);
        cmd = cmd
            .env(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(to_io)?;
        if let Some(dir) = &launch.cwd {
            cmd = cmd.cwd(dir.as_os_str()).map_err(to_io)?;
        }
        if let Some((uid, gid)) = launch.ids {
            cmd = cmd.credentials(Credentials {
                uid,
                gid,
                groups: vec![gid],
            });
        }
        if let Some(keep) = launch.keep_caps {
            cmd = cmd.keep_capabilities(keep);
        }
        // The write end must stay open until spawn returns; it drops after.
        let log_fd = match &launch.log {
            LogSpec::Inherit => None,
            LogSpec::File {
                path,
                max_size,
                keep,
            } => Some(super::logfile::start(path.clone(), *max_size, *keep)?),
        };
        if let Some(fd) = &log_fd {
            cmd = cmd.stdio(1, fd.as_raw_fd()).stdio(2, fd.as_raw_fd());
        }
        cmd.spawn(&self.inherited).map_err(to_io)
    }

    fn signal_group(&mut self, pgid: i32, sig: Signal) {
        if pgid > 1 {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig);
        }
    }

    fn group_alive(&mut self, pgid: i32) -> bool {
        // A group's zombies count here, but the loop reaps before it asks.
        pgid > 1 && nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
    }

    fn start_probe(&mut self, service: usize, generation: u64, probe: &Probe, timeout: Duration) {
        let waker = self.waker.clone();
        let probe = probe.clone();
        let started = std::thread::Builder::new()
            .name("berth-probe".into())
            .spawn(move || {
                let ok = match probe {
                    Probe::Tcp { port } => probe::tcp(port, timeout),
                    Probe::Http { port, path } => probe::http(port, &path, timeout),
                    Probe::Cmd(_) => false,
                };
                waker.send(Msg::Probe {
                    service,
                    generation,
                    ok,
                });
            });
        if started.is_err() {
            self.waker.send(Msg::Probe {
                service,
                generation,
                ok: false,
            });
        }
    }
}
