//! Login benchmark: time from container start (berth-init as PID 1 with a `login:`
//! section) to the first successful certificate login, and the latency of one login
//! (`ssh work@ true`) against berth-init's sshd vs the same sshd configured by hand
//! (a literal sshd_config, the anchor) in the same run. Root; real OpenSSH.
//! Run: cargo build --workspace --bins && cargo bench -p berth-tests --bench login

use std::time::{Duration, Instant};

use berth_tests::login::{sh, Container, Key};

const ROUNDS: usize = 20;

fn spec(ca: &str) -> String {
    format!("services:\n  idle: {{command: [sleep, \"3600\"]}}\nlogin:\n  ca: {ca}\n  users:\n    work: {{principals: [team]}}\n")
}

/// The anchor: sshd configured by hand, the way an operator would without berth.
fn by_hand(d: &str, ca: &str) -> String {
    let login = format!("{d}/run/login");
    std::fs::create_dir_all(format!("{login}/principals")).unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    sh(std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(format!("{login}/ssh_host_ed25519_key")));
    std::fs::copy(ca, format!("{login}/ca")).unwrap();
    std::fs::write(format!("{login}/principals/work"), "team\n").unwrap();
    std::fs::write(
        format!("{login}/sshd_config"),
        format!(
            "Port 22\nHostKey {login}/ssh_host_ed25519_key\nPidFile {login}/sshd.pid\n\
             TrustedUserCAKeys {login}/ca\nAuthorizedPrincipalsFile {login}/principals/%u\n\
             AuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             UsePAM no\nStrictModes no\n"
        ),
    )
    .unwrap();
    format!("/usr/sbin/sshd -D -e -f {login}/sshd_config")
}

fn latency(c: &Container, key: &Key) -> Duration {
    c.wait_login(key);
    let t0 = Instant::now();
    for _ in 0..ROUNDS {
        let out = c.ssh(key, "work", "true", &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    t0.elapsed() / ROUNDS as u32
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let keys = tempfile::tempdir().unwrap();
    let ca = Key::new(keys.path(), "ca");
    let u = Key::new(keys.path(), "u");
    ca.sign(&u, "team", "+1h");
    let ca_pub = ca.0.with_extension("pub").display().to_string();

    let t0 = Instant::now();
    let berth = Container::start(&spec(&ca_pub));
    berth.wait_login(&u);
    let first = t0.elapsed();
    let b = latency(&berth, &u);
    drop(berth);

    let t0 = Instant::now();
    let hand = Container::start_exec("", |d| by_hand(d, &ca_pub));
    hand.wait_login(&u);
    let hand_first = t0.elapsed();
    let h = latency(&hand, &u);

    println!("login: container start -> first login   berth-init {:.1} ms   hand-configured sshd {:.1} ms   ratio {:.2}", ms(first), ms(hand_first), ms(first) / ms(hand_first));
    println!("login: one login (ssh work@ true, {ROUNDS} rounds)   berth-init {:.1} ms   hand-configured sshd {:.1} ms   ratio {:.2}", ms(b), ms(h), ms(b) / ms(h));
}
