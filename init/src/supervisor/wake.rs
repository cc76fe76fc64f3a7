//! Messages from helper threads (socket clients, network probes) to the run loop: an
//! mpsc channel plus a non-blocking pipe whose read end sits in the loop's poll set.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::mpsc;

use nix::fcntl::OFlag;

use crate::status::Request;

/// A message for the run loop.
#[derive(Debug)]
pub enum Msg {
    /// A socket request and where to send the answer line.
    Ctl(Request, mpsc::Sender<String>),
    /// A network probe's result.
    Probe {
        /// Service index.
        service: usize,
        /// Probe generation.
        generation: u64,
        /// Passed.
        ok: bool,
    },
    /// The DHCP lease changed (acquired, renewed, lost): refresh what is published.
    Network,
    /// An LVS director call ended: refresh the status, maybe finish shutdown.
    Lvs,
}

/// The sending side, cloned into threads.
#[derive(Debug, Clone)]
pub struct Waker {
    tx: mpsc::Sender<Msg>,
    pipe: std::sync::Arc<OwnedFd>,
}

impl Waker {
    /// Sends `msg` and wakes the loop.
    pub fn send(&self, msg: Msg) {
        if self.tx.send(msg).is_ok() {
            let _ = nix::unistd::write(self.pipe.as_fd(), &[1u8]);
        }
    }
}

/// The loop's side.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Msg>,
    pipe: OwnedFd,
}

impl Inbox {
    /// The fd to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.pipe.as_fd()
    }

    /// Empties the pipe and returns every message.
    pub fn drain(&self) -> Vec<Msg> {
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&self.pipe), &mut buf), Ok(n) if n > 0)
        {
        }
        self.rx.try_iter().collect()
    }
}

/// A connected pair.
pub fn channel() -> std::io::Result<(Waker, Inbox)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let (tx, rx) = mpsc::channel();
    Ok((
        Waker {
            tx,
            pipe: std::sync::Arc::new(w),
        },
        Inbox { rx, pipe: r },
    ))
}
