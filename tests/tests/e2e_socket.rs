//! The container cannot redirect the executor to a host socket (root, runc, the real
//! executor): `/run/berth` in the container is the host run dir, so a task can replace
//! `init.sock` with a symlink to any host path. The executor opens the socket without
//! following a symlink: a listening host socket named by such a symlink never receives a
//! connection, the task is still killed cleanly and nothing is left.

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use berth_tests::mesos::harness::{assert_root, Lab};
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

/// The test's host socket, removed on drop.
struct HostSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl Drop for HostSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl HostSocket {
    fn new(name: &str) -> HostSocket {
        let path = std::env::temp_dir().join(format!("berth-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        HostSocket { path, listener }
    }

    /// Whether anybody connected (the backlog holds the connection until accepted).
    fn connected(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("accept on the host socket: {e}"),
        }
    }
}

#[test]
fn a_symlinked_init_socket_never_reaches_the_host_socket() {
    assert_root();
    let host = HostSocket::new("hostsock");
    let lab = Lab::new("socket");
    let tid = lab.task_id("evil");
    let cmd = format!(
        "ln -sf {} /run/berth/init.sock && echo > /mnt/mesos/sandbox/swapped; exec sleep 1000",
        host.path.display()
    );
    let spec = lab.spec(&tid, Some(&cmd));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    let swapped = spec.sandbox.join("swapped");
    assert!(
        d.wait(T, |_| swapped.exists()),
        "the task never swapped the socket: {:?}\n{}",
        d.state().updates,
        exec.log()
    );
    // Let the executor try its socket a few times (RUNNING wait, init status polls).
    std::thread::sleep(Duration::from_secs(3));
    d.kill(&tid, Some(Duration::from_secs(1)));
    let ended = d.wait(T, |st| {
        st.states(&tid)
            .iter()
            .any(|s| s == "TASK_KILLED" || s == "TASK_FAILED")
    });
    assert!(ended, "{:?}\n{}", d.state().states(&tid), exec.log());
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(
        !host.connected(),
        "the executor connected to the host socket: {}",
        exec.log()
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    lab.assert_clean();
}
