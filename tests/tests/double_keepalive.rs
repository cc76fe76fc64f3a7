//! The executor notices an agent that is gone without closing its connections, and takes
//! the reconnect path: an agent that accepts and never answers (response timeout), a
//! stream that carries nothing, not even HEARTBEAT (stream silence), and an agent
//! black-holed by the network while the stream is idle (TCP keepalive; root: an
//! iptables DROP inside a private network namespace).

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_executor::mesos::env::ExecutorEnv;
use berth_executor::session::{Exit, LaunchRequest, Launcher, Session};
use berth_tests::mesos::AgentDouble;

const FW: &str = "fw-keepalive";
const EX: &str = "marathon-k.1";

/// Never gets a task in these tests.
struct NoTasks;

impl Launcher for NoTasks {
    fn launch(&self, _req: LaunchRequest) {
        panic!("no task is launched in these tests");
    }
}

fn env(endpoint: &str, extra: &[(&str, &str)]) -> ExecutorEnv {
    let mut v = vec![
        ("MESOS_FRAMEWORK_ID", FW),
        ("MESOS_EXECUTOR_ID", EX),
        ("MESOS_AGENT_ENDPOINT", endpoint),
        ("MESOS_DIRECTORY", "/tmp"),
        ("MESOS_CHECKPOINT", "1"),
        ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "100ms"),
        ("MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD", "1secs"),
    ];
    v.extend_from_slice(extra);
    ExecutorEnv::from_vars(v).unwrap()
}

fn run_session(env: ExecutorEnv) -> std::thread::JoinHandle<Exit> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (_stop_tx, stop_rx) = tokio::sync::mpsc::channel(1);
            Session::run(env, Arc::new(NoTasks), None, stop_rx)
                .await
                .unwrap()
        })
    })
}

#[test]
fn an_agent_that_accepts_and_never_answers_is_retried_then_given_up() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = l.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let n = accepted.clone();
    // Accepts, reads the request, never answers; holds every connection open.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            s.set_read_timeout(Some(Duration::from_millis(200))).ok();
            let _ = s.read(&mut buf);
            n.fetch_add(1, Ordering::SeqCst);
            held.push(s);
        }
    });
    let t = Instant::now();
    let h = run_session(env(
        &endpoint,
        &[
            ("BERTH_EXECUTOR_AGENT_TIMEOUT", "300ms"),
            ("MESOS_RECOVERY_TIMEOUT", "3secs"),
        ],
    ));
    let exit = h.join().unwrap();
    assert!(
        matches!(exit, Exit::AgentLost(_)),
        "gives up after MESOS_RECOVERY_TIMEOUT: {exit:?}"
    );
    let tries = accepted.load(Ordering::SeqCst);
    assert!(
        tries >= 4,
        "each unanswered SUBSCRIBE times out and is retried: {tries} attempts"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn a_stream_without_events_or_heartbeats_is_resubscribed() {
    let d = AgentDouble::start(FW, EX);
    let _h = run_session(env(
        &d.endpoint,
        &[("BERTH_EXECUTOR_STREAM_SILENCE", "1secs")],
    ));
    assert!(d.wait(Duration::from_secs(5), |st| st.subscriptions.len() == 1));
    // Heartbeats keep a quiet stream alive.
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        d.heartbeat();
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        d.state().subscriptions.len(),
        1,
        "a heartbeating stream is kept"
    );
    // Then silence: the executor takes the stream as lost and subscribes again.
    assert!(
        d.wait(Duration::from_secs(5), |st| st.subscriptions.len() >= 2),
        "no resubscription after a silent stream"
    );
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    d.shutdown();
}

/// `(state, timer)` of the TCP sockets whose remote port is `remote_port` (the
/// executor's ends of its connections to the agent), read from the calling thread's
/// network namespace.
fn client_sockets(remote_port: u16) -> Vec<(String, String)> {
    let text = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let rport = f.get(2)?.rsplit_once(':')?.1;
            let timer = f.get(5)?.split(':').next()?.to_string();
            (u16::from_str_radix(rport, 16).ok()? == remote_port).then(|| (f[3].to_string(), timer))
        })
        .collect()
}

fn sh(argv: &[&str]) {
    let st = std::process::Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(st.success(), "{argv:?} failed");
}

#[test]
fn a_black_holed_agent_is_detected_by_keepalive_and_resubscribed() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test makes a network namespace and iptables rules: run it as root"
    );
    // Everything runs in one thread moved into a private netns (freed with it): the
    // double's listener, the session's runtime (threads it starts inherit the netns)
    // and the iptables commands.
    let t = std::thread::spawn(|| {
        // SAFETY: unshare(CLONE_NEWNET) affects only this thread.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
        sh(&["ip", "link", "set", "lo", "up"]);
        let d = AgentDouble::start(FW, EX);
        let port: u16 = d.endpoint.rsplit_once(':').unwrap().1.parse().unwrap();
        let _h = run_session(env(
            &d.endpoint,
            &[
                ("BERTH_EXECUTOR_AGENT_KEEPALIVE", "1secs"),
                ("BERTH_EXECUTOR_AGENT_TIMEOUT", "1secs"),
            ],
        ));
        assert!(d.wait(Duration::from_secs(5), |st| st.subscriptions.len() == 1));
        // The executor's end of the stream is ESTABLISHED (01) with the keepalive
        // timer (02) running.
        let socks = client_sockets(port);
        assert!(
            socks.iter().any(|(st, tr)| st == "01" && tr == "02"),
            "no established stream with a keepalive timer: {socks:?}"
        );
        // Black-hole the agent: every packet on lo dropped, the stream idle.
        sh(&["iptables", "-w", "-A", "INPUT", "-j", "DROP"]);
        // Keepalive: 1 s idle + 3 probes 1 s apart -> the stream is reset after ~4 s,
        // and the executor tries to subscribe again (SYNs dropped, 1 s timeout each).
        let gone = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while Instant::now() < gone {
            seen = client_sockets(port);
            if !seen.iter().any(|(st, _)| st == "01") {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            !seen.iter().any(|(st, _)| st == "01"),
            "the black-holed stream was never given up: {seen:?}"
        );
        // The agent is reachable again: the executor resubscribes.
        sh(&["iptables", "-w", "-D", "INPUT", "-j", "DROP"]);
        assert!(
            d.wait(Duration::from_secs(10), |st| st.subscriptions.len() >= 2),
            "no resubscription after the black hole ended"
        );
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        d.shutdown();
    });
    t.join().expect("the netns thread failed");
}
