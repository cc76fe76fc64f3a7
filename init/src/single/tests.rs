//! The tini loop against a scripted kernel: which signals go where, when it reaps, what
//! it exits with.

use std::collections::VecDeque;
use std::io;

use super::*;
use crate::exit_status::ExitRemap;

const CHILD: i32 = 100;

/// One wake-up of the loop: the signals read, then what `waitpid` returns if it reaps.
struct Fake {
    wakeups: VecDeque<Vec<i32>>,
    exits: VecDeque<Reaped>,
    kills: Vec<(i32, i32)>,
    kill_error: Option<i32>,
    reads: usize,
}

impl Fake {
    fn new(wakeups: &[&[i32]], exits: &[Reaped]) -> Self {
        Self {
            wakeups: wakeups.iter().map(|w| w.to_vec()).collect(),
            exits: exits.iter().copied().collect(),
            kills: Vec::new(),
            kill_error: None,
            reads: 0,
        }
    }
}

impl WaitAny for Fake {
    fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError> {
        Ok(self.exits.pop_front())
    }
}

impl Os for Fake {
    fn read_signals(&mut self, out: &mut Vec<Received>) -> Result<(), SignalError> {
        self.reads += 1;
        let batch = self
            .wakeups
            .pop_front()
            .expect("the loop read past the script");
        out.clear();
        out.extend(batch.into_iter().map(|signo| Received {
            signo,
            sender: 0,
            code: 0,
        }));
        Ok(())
    }

    fn kill(&mut self, target: i32, signo: i32) -> io::Result<()> {
        self.kills.push((target, signo));
        match self.kill_error {
            Some(e) => Err(io::Error::from_raw_os_error(e)),
            None => Ok(()),
        }
    }
}

fn exited(pid: i32, code: u8) -> Reaped {
    Reaped {
        pid,
        exit: ExitKind::Exited(code),
    }
}

fn killed(pid: i32, signo: i32) -> Reaped {
    Reaped {
        pid,
        exit: ExitKind::Signaled {
            signo,
            core_dumped: false,
        },
    }
}

fn config() -> Config {
    Config {
        command: vec!["x".into()],
        ..Config::default()
    }
}

fn quiet() -> Log {
    Log::new(0)
}

#[test]
fn forwards_in_order_and_exits_with_128_plus_n() {
    let mut os = Fake::new(
        &[&[libc::SIGHUP, libc::SIGTERM], &[libc::SIGCHLD]],
        &[killed(CHILD, libc::SIGTERM)],
    );
    let code = supervise(&mut os, CHILD, &config(), &quiet()).unwrap();
    assert_eq!(code, 143);
    assert_eq!(os.kills, [(CHILD, libc::SIGHUP), (CHILD, libc::SIGTERM)]);
}

#[test]
fn group_mode_signals_the_process_group() {
    let mut os = Fake::new(&[&[libc::SIGUSR1, libc::SIGCHLD]], &[exited(CHILD, 0)]);
    let c = Config {
        kill_process_group: true,
        ..config()
    };
    assert_eq!(supervise(&mut os, CHILD, &c, &quiet()).unwrap(), 0);
    assert_eq!(os.kills, [(-CHILD, libc::SIGUSR1)]);
}

#[test]
fn never_forwards_sigchld() {
    let mut os = Fake::new(&[&[libc::SIGCHLD]], &[exited(CHILD, 7)]);
    assert_eq!(supervise(&mut os, CHILD, &config(), &quiet()).unwrap(), 7);
    assert!(os.kills.is_empty());
}

#[test]
fn one_sigchld_reaps_every_pending_exit() {
    // Coalesced SIGCHLD: three orphans and the child ended, one signal delivered.
    let mut os = Fake::new(
        &[&[libc::SIGCHLD]],
        &[exited(7, 0), exited(8, 1), exited(CHILD, 3), exited(9, 0)],
    );
    assert_eq!(supervise(&mut os, CHILD, &config(), &quiet()).unwrap(), 3);
    assert!(
        os.exits.is_empty(),
        "drained to the end, not stopped at the child"
    );
    assert_eq!(os.reads, 1);
}

/// A fake whose exits become visible one batch per wake-up, like a real kernel where
/// later exits have not happened yet.
struct Staged(Fake, VecDeque<Vec<Reaped>>);

impl WaitAny for Staged {
    fn wait_any(&mut self) -> Result<Option<Reaped>, ReapError> {
        self.0.wait_any()
    }
}

impl Os for Staged {
    fn read_signals(&mut self, out: &mut Vec<Received>) -> Result<(), SignalError> {
        if let Some(batch) = self.1.pop_front() {
            self.0.exits.extend(batch);
        }
        self.0.read_signals(out)
    }

    fn kill(&mut self, target: i32, signo: i32) -> io::Result<()> {
        self.0.kill(target, signo)
    }
}

#[test]
fn orphans_alone_keep_the_loop_going() {
    // Wake-up 1 reaps an orphan only, 2 forwards SIGINT, 3 reaps the child.
    let mut os = Staged(
        Fake::new(&[&[libc::SIGCHLD], &[libc::SIGINT], &[libc::SIGCHLD]], &[]),
        VecDeque::from([vec![exited(7, 0)], vec![], vec![exited(CHILD, 4)]]),
    );
    assert_eq!(supervise(&mut os, CHILD, &config(), &quiet()).unwrap(), 4);
    assert_eq!(os.0.reads, 3);
    assert_eq!(os.0.kills, [(CHILD, libc::SIGINT)]);
}

#[test]
fn remapped_codes_become_zero() {
    let mut remap = ExitRemap::new();
    remap.insert(143);
    let c = Config { remap, ..config() };
    let mut os = Fake::new(&[&[libc::SIGCHLD]], &[killed(CHILD, libc::SIGTERM)]);
    assert_eq!(supervise(&mut os, CHILD, &c, &quiet()).unwrap(), 0);
    let mut os = Fake::new(&[&[libc::SIGCHLD]], &[exited(CHILD, 142)]);
    assert_eq!(supervise(&mut os, CHILD, &c, &quiet()).unwrap(), 142);
}

#[test]
fn a_child_already_gone_is_not_an_error() {
    let mut os = Fake::new(&[&[libc::SIGTERM], &[libc::SIGCHLD]], &[exited(CHILD, 0)]);
    os.kill_error = Some(libc::ESRCH);
    assert_eq!(supervise(&mut os, CHILD, &config(), &quiet()).unwrap(), 0);
    assert_eq!(os.kills, [(CHILD, libc::SIGTERM)]);
}
