//! Subprocess helpers: run-to-completion with a clear panic, and kill-on-drop children.

use std::process::{Child, Command, Output};

/// Run `argv` to completion; panic with its stderr if it fails.
pub fn run(argv: &[&str]) -> Output {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("lab: cannot run {argv:?}: {e}"));
    assert!(
        out.status.success(),
        "lab: {argv:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A child process killed (SIGKILL) and reaped on drop.
pub struct ChildGuard {
    child: Option<Child>,
    what: String,
}

impl ChildGuard {
    /// Spawn `cmd`; panic with `what` if it cannot start.
    pub fn spawn(mut cmd: Command, what: &str) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("lab: cannot start {what}: {e}"));
        Self {
            child: Some(child),
            what: what.to_string(),
        }
    }

    /// The pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Wait for it to exit by itself; returns its output streams if they were piped.
    pub fn wait_output(mut self) -> Output {
        let child = self.child.take().expect("child present");
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("lab: waiting for {}: {e}", self.what))
    }

    /// Send SIGTERM and wait (graceful stop).
    pub fn terminate(mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on a child we own and have not reaped yet.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
