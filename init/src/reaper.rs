//! The one reaper: collects every exited child of the init (its own children and the
//! orphans the kernel reparents to it) and hands each status to whoever owns that pid.
//!
//! Rules it exists to enforce (REFERENCE 8):
//! - SIGCHLDs coalesce, so after any SIGCHLD call [`drain`], which loops
//!   `waitpid(-1, WNOHANG)` until nothing is left.
//! - Only one place in the process may call `waitpid(-1)`; anything else that waits for
//!   a specific pid would race with it. Owners register their pids in a [`ChildTable`]
//!   and get their status through [`ChildTable::dispatch`], so no status is lost and none
//!   goes to the wrong owner.
//!
//! `waitpid` sits behind the [`WaitAny`] trait so the dispatch logic is unit-tested with
//! a scripted fake.

use std::collections::HashMap;
use std::io;

use crate::exit_status::ExitKind;

/// One process that ended and was reaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Its pid, as the init sees it.
    pub pid: i32,
    /// How it ended.
    pub exit: ExitKind,
}

/// `waitpid` failed with something other than "no children".
#[derive(Debug, thiserror::Error)]
#[error("waitpid(-1) failed")]
pub struct ReapError(#[source] pub io::Error);

/// Collects one ended child without blocking.
pub trait WaitAny {
    /// Returns the next ended child, or `None` when no child has ended (or there are no
    /// children at all).
    fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError>;
}

/// The real `waitpid(-1, WNOHANG)`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SysWait;

impl WaitAny for SysWait {
    #[link_section = ".text.berth_tini"]
    fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError> {
        loop {
            let mut status = 0;
            // SAFETY: `status` is a valid out-pointer; WNOHANG never blocks.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid > 0 {
                match ExitKind::from_wait_status(status) {
                    Some(exit) => return Ok(Some(Reaped { pid, exit })),
                    // Without WUNTRACED/WCONTINUED this does not happen; skip it anyway.
                    None => continue,
                }
            }
            if pid == 0 {
                return Ok(None);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(ReapError(err)),
            }
        }
    }
}

/// Reaps every child that has ended, calling `on_reaped` for each, until none is left.
/// Returns how many were reaped.
#[link_section = ".text.berth_tini"]
pub fn drain<W: WaitAny + ?Sized>(
    wait: &mut W,
    mut on_reaped: impl FnMut(Reaped),
) -> Result<usize, ReapError> {
    let mut count = 0;
    while let Some(reaped) = wait.wait_any()? {
        count += 1;
        on_reaped(reaped);
    }
    Ok(count)
}

/// Where a reaped status goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch<T> {
    /// A registered child ended; its owner (removed from the table) and status.
    Owned(T, Reaped),
    /// A process nobody registered: an orphan reparented to the init.
    Orphan(Reaped),
}

/// Maps the pids the init started to their owners (a service name, a hook id, ...).
#[derive(Debug)]
pub struct ChildTable<T> {
    owners: HashMap<i32, T>,
}

impl<T> Default for ChildTable<T> {
    #[link_section = ".text.berth_tini"]
    fn default() -> Self {
        Self {
            owners: HashMap::new(),
        }
    }
}

impl<T> ChildTable<T> {
    /// An empty table.
    #[link_section = ".text.berth_tini"]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `pid` as belonging to `owner`. Do it before the next [`drain`] (in the
    /// same thread right after spawning is enough: a child that already ended stays a
    /// zombie until reaped). Returns the previous owner if the pid was registered.
    #[link_section = ".text.berth_tini"]
    pub fn insert(&mut self, pid: i32, owner: T) -> Option<T> {
        self.owners.insert(pid, owner)
    }

    /// Whether `pid` is registered.
    #[link_section = ".text.berth_tini"]
    pub fn contains(&self, pid: i32) -> bool {
        self.owners.contains_key(&pid)
    }

    /// How many registered children are still running.
    #[link_section = ".text.berth_tini"]
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// Whether no registered child is running.
    #[link_section = ".text.berth_tini"]
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// The registered pids (to signal them all, for instance).
    #[link_section = ".text.berth_tini"]
    pub fn pids(&self) -> impl Iterator<Item = i32> + '_ {
        self.owners.keys().copied()
    }

    /// Routes a reaped status to its owner, unregistering the pid.
    #[link_section = ".text.berth_tini"]
    pub fn dispatch(&mut self, reaped: Reaped) -> Dispatch<T> {
        match self.owners.remove(&reaped.pid) {
            Some(owner) => Dispatch::Owned(owner, reaped),
            None => Dispatch::Orphan(reaped),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    struct Scripted(VecDeque<Result<Option<Reaped>, ReapError>>);

    impl WaitAny for Scripted {
        fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError> {
            self.0.pop_front().unwrap_or(Ok(None))
        }
    }

    fn reaped(pid: i32, code: u8) -> Reaped {
        Reaped {
            pid,
            exit: ExitKind::Exited(code),
        }
    }

    #[test]
    fn drain_collects_until_none() {
        let mut wait = Scripted(
            [
                Ok(Some(reaped(10, 0))),
                Ok(Some(reaped(11, 1))),
                Ok(Some(reaped(12, 2))),
                Ok(None),
            ]
            .into_iter()
            .collect(),
        );
        let mut seen = Vec::new();
        assert_eq!(drain(&mut wait, |r| seen.push(r.pid)).unwrap(), 3);
        assert_eq!(seen, [10, 11, 12]);
    }

    #[test]
    fn drain_reports_errors_after_delivering_earlier_statuses() {
        let mut wait = Scripted(
            [
                Ok(Some(reaped(10, 0))),
                Err(ReapError(io::Error::from_raw_os_error(libc::EINVAL))),
            ]
            .into_iter()
            .collect(),
        );
        let mut seen = Vec::new();
        assert!(drain(&mut wait, |r| seen.push(r.pid)).is_err());
        assert_eq!(seen, [10]);
    }

    #[test]
    fn table_dispatches_owners_and_orphans() {
        let mut table = ChildTable::new();
        assert!(table.insert(10, "web").is_none());
        table.insert(11, "cron");
        assert_eq!(table.len(), 2);
        assert_eq!(
            table.dispatch(reaped(10, 3)),
            Dispatch::Owned("web", reaped(10, 3))
        );
        assert_eq!(
            table.dispatch(reaped(10, 3)),
            Dispatch::Orphan(reaped(10, 3))
        );
        assert_eq!(
            table.dispatch(reaped(99, 0)),
            Dispatch::Orphan(reaped(99, 0))
        );
        assert!(table.contains(11));
        assert_eq!(table.pids().collect::<Vec<_>>(), [11]);
    }
}
