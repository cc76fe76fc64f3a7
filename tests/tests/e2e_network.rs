//! The executor's network step, end to end as root: the lab (a LAN netns with a real
//! dnsmasq, a "host" netns whose veth `nic0` plays the physical NIC), the agent double
//! and the executor both in that host netns, runc containers with berth-init.
//!
//! A task with networking gets its own netns (named by netcfg from the task id) with a
//! macvlan eth0 and the configured tc limits in both directions, and the container runs
//! in it; after KILL nothing is left (netns, links, ifb). Bad network labels fail the
//! task naming the field; a failure at the network step (injected, or a missing parent)
//! fails it and leaves nothing. Without networking configured the container gets a
//! private netns with only loopback.

use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::Duration;

use berth_tests::lab::{self, netns_pin, Ns, TaskNetns};
use berth_tests::mesos::harness::start_in;
use berth_tests::mesos::harness::Lab as ExecLab;
use berth_tests::mesos::AgentDouble;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn with_labels(mut task: Value, labels: &[(&str, &str)]) -> Value {
    let list = task["labels"]["labels"].as_array_mut().expect("labels");
    for (k, v) in labels {
        list.push(json!({"key": k, "value": v}));
    }
    task
}

fn last_update(d: &AgentDouble) -> Value {
    d.state().updates.last().cloned().unwrap_or_default()
}

/// The pid of the container's init (`runc state`).
fn container_pid(lab: &ExecLab, tid: &str) -> u32 {
    let id = format!("berth-{tid}");
    let out = Command::new("runc")
        .arg("--root")
        .arg(&lab.runc_root)
        .args(["state", &id])
        .output()
        .expect("runc state");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("runc state {id}: {}", String::from_utf8_lossy(&out.stderr)));
    v["pid"].as_u64().expect("pid") as u32
}

fn netns_inode_of(pid: u32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .expect("ns/net")
        .ino()
}

/// Link names in a netns (`ip -o link`), without the `@peer` suffix.
fn links(ns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

fn assert_host_clean(host: &Ns) {
    let mut l = links(host.name());
    l.sort();
    assert_eq!(l, ["lo", "nic0"], "links left in the host netns");
}

#[test]
fn a_networked_task_runs_in_its_netns_with_limits_and_leaves_nothing() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("net");
    let tid = lab.task_id("web");
    let guard = TaskNetns::new(&tid);
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let task = with_labels(
        lab.task(&tid),
        &[("berth.egress", "20mbit"), ("berth.ingress", "10mbit")],
    );
    let (d, mut exec) = start_in(&net.host, spec, task);
    d.wait_state(&tid, "TASK_RUNNING", T);

    // The netns exists, holds eth0 (a macvlan on nic0) and the ifb, and the container
    // runs in it.
    let ns = guard.name();
    assert!(netns_pin(ns).exists(), "netns {ns} missing");
    let l = links(ns);
    assert!(l.iter().any(|n| n == "eth0"), "eth0 in {l:?}");
    assert!(l.iter().any(|n| n.starts_with("ifb")), "ifb in {l:?}");
    let detail = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["-n", ns, "-d", "link", "show", "eth0"])
            .output()
            .expect("ip -d link")
            .stdout,
    )
    .to_string();
    assert!(detail.contains("macvlan mode bridge"), "{detail}");
    let pid = container_pid(&lab, &tid);
    assert_eq!(
        netns_inode_of(pid),
        std::fs::metadata(netns_pin(ns)).expect("pin").ino(),
        "the container is not in the prepared netns"
    );
    // tc limits in both directions: tbf on eth0 (egress), tbf on the ifb (ingress).
    let tc = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "exec", ns, "tc", "qdisc", "show"])
            .output()
            .expect("tc")
            .stdout,
    )
    .to_string();
    let eth0_tbf = tc
        .lines()
        .find(|l| l.contains("tbf") && l.contains("dev eth0"))
        .unwrap_or_else(|| panic!("no tbf on eth0: {tc}"));
    assert!(eth0_tbf.contains("rate 20Mbit"), "{eth0_tbf}");
    let ifb_tbf = tc
        .lines()
        .find(|l| l.contains("tbf") && l.contains("dev ifb"))
        .unwrap_or_else(|| panic!("no tbf on the ifb: {tc}"));
    assert!(ifb_tbf.contains("rate 10Mbit"), "{ifb_tbf}");
    assert!(tc.contains("ingress"), "{tc}");
    // berth-init is told to run DHCP on eth0 and keeps NET_ADMIN/NET_RAW for it (on its
    // DHCP thread: the main thread, which forks the command, dropped them).
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("environ");
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|e| e == b"BERTH_DHCP_IFACE=eth0"),
        "BERTH_DHCP_IFACE not passed"
    );
    let caps = thread_cap_bnds(pid);
    assert!(
        caps.iter()
            .any(|c| c & (NET_ADMIN | NET_RAW) == NET_ADMIN | NET_RAW),
        "no thread of init keeps NET_ADMIN/NET_RAW: {caps:x?}"
    );
    assert!(caps.iter().all(|c| c & SYS_ADMIN == 0), "{caps:x?}");

    d.kill(&tid, Some(Duration::from_secs(2)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    assert!(!netns_pin(ns).exists(), "netns {ns} left behind");
    assert_host_clean(&net.host);
    lab.assert_clean();
}

#[test]
fn bad_network_labels_fail_the_task_naming_the_field() {
    lab::require_root();
    let lab = ExecLab::new("netbad");
    for (what, labels, field) in [
        (
            "bandwidth",
            [("berth.bandwidth", "lots")],
            "labels.berth.bandwidth",
        ),
        ("egress", [("berth.egress", "1kbit")], "labels.berth.egress"),
        ("vlan", [("berth.vlan", "4095")], "labels.berth.vlan"),
    ] {
        let tid = lab.task_id(what);
        let guard = TaskNetns::new(&tid);
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        // Validation comes first: the parent is never looked at.
        spec.env
            .push(("BERTH_EXECUTOR_NET_PARENT".into(), "nic0".into()));
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(with_labels(lab.task(&tid), &labels));
        let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
        d.wait_state(&tid, "TASK_FAILED", T);
        let u = last_update(&d);
        assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{what}: {u}");
        assert!(
            u["message"].as_str().unwrap_or("").contains(field),
            "{what}: {u}"
        );
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        assert!(!guard.path().exists());
    }
    lab.assert_clean();
}

#[test]
fn a_failure_at_the_network_step_fails_the_task_and_leaves_nothing() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("netfail");
    for (what, parent, fail_step, expect) in [
        (
            "injected",
            "nic0",
            Some("network"),
            "network: failure injected",
        ),
        ("after", "nic0", Some("bundle"), "bundle: failure injected"),
        ("noparent", "nosuch0", None, "network: "),
    ] {
        let tid = lab.task_id(what);
        let guard = TaskNetns::new(&tid);
        let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
        spec.env
            .push(("BERTH_EXECUTOR_NET_PARENT".into(), parent.into()));
        if let Some(s) = fail_step {
            spec.env.push(("BERTH_EXECUTOR_FAIL_STEP".into(), s.into()));
        }
        let task = with_labels(lab.task(&tid), &[("berth.bandwidth", "50mbit")]);
        let (d, mut exec) = start_in(&net.host, spec, task);
        d.wait_state(&tid, "TASK_FAILED", T);
        let u = last_update(&d);
        assert_eq!(u["reason"], "REASON_CONTAINER_LAUNCH_FAILED", "{what}: {u}");
        assert!(
            u["message"].as_str().unwrap_or("").contains(expect),
            "{what}: {u}"
        );
        assert!(!d.state().states(&tid).iter().any(|s| s == "TASK_RUNNING"));
        exec.wait_exit(T)
            .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
        assert!(d.violations().is_empty(), "{:?}", d.violations());
        assert!(!guard.path().exists(), "{what}: netns left behind");
        assert_host_clean(&net.host);
    }
    lab.assert_clean();
}

#[test]
fn without_networking_the_container_has_a_private_netns_with_only_lo() {
    lab::require_root();
    let lab = ExecLab::new("nonet");
    let tid = lab.task_id("plain");
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
    d.launch_on_subscribe(lab.task(&tid));
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let pid = container_pid(&lab, &tid);
    assert_ne!(
        netns_inode_of(pid),
        netns_inode_of(std::process::id()),
        "the container shares the host's netns"
    );
    let out = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["ip", "-o", "link", "show"])
        .output()
        .expect("nsenter");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let names: Vec<&str> = text.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{text}");
    d.kill(&tid, Some(Duration::from_secs(2)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    lab.assert_clean();
}

#[test]
fn task_running_carries_the_dhcp_address_which_answers_from_the_lan() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("netdhcp");
    // App spec mode: berth-init acquires the lease on eth0 (BERTH_DHCP_IFACE from the
    // executor) before starting its services, and reports it on its status socket.
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).expect("etc/berth");
    std::fs::write(
        img.join("etc/berth/app.yaml"),
        "services:\n  main:\n    command: [\"/bin/sleep\", \"1000\"]\n",
    )
    .expect("app.yaml");
    let tid = lab.task_id("dhcp");
    let guard = TaskNetns::new(&tid);
    let mut spec = lab.spec(&tid, None);
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let (d, mut exec) = start_in(&net.host, spec, lab.task(&tid));
    d.wait_state(&tid, "TASK_RUNNING", Duration::from_secs(45));
    let running = d
        .state()
        .updates
        .iter()
        .find(|u| u["state"] == "TASK_RUNNING")
        .cloned()
        .expect("TASK_RUNNING update");
    let ipa = &running["container_status"]["network_infos"][0]["ip_addresses"][0];
    assert_eq!(ipa["protocol"], "IPv4", "{running}");
    let ip: std::net::Ipv4Addr = ipa["ip_address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {running}\n{}", exec.log()))
        .parse()
        .expect("an IPv4 address");
    let o = ip.octets();
    assert!(
        o[..3] == [10, 77, 0] && (100..=199).contains(&o[3]),
        "{ip} is not from dnsmasq's range"
    );
    assert!(
        net.dhcp.leases().contains(&ip.to_string()),
        "dnsmasq has no lease for {ip}: {}",
        net.dhcp.leases()
    );
    // The address is on eth0 in the task's netns and answers from the LAN.
    let addrs = String::from_utf8_lossy(
        &Command::new("ip")
            .args([
                "-n",
                guard.name(),
                "-4",
                "-o",
                "addr",
                "show",
                "dev",
                "eth0",
            ])
            .output()
            .expect("ip addr")
            .stdout,
    )
    .to_string();
    assert!(addrs.contains(&format!("{ip}/")), "{addrs}");
    let ping = net
        .lan
        .exec(&["busybox", "ping", "-c", "2", "-W", "2", &ip.to_string()]);
    assert!(
        ping.status.success(),
        "ping {ip} from the LAN: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );

    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    assert!(!guard.path().exists(), "netns left behind");
    assert_host_clean(&net.host);
    lab.assert_clean();
}

#[test]
fn a_new_executor_recovers_a_networked_task_and_tears_its_network_down() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("netrecover");
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).expect("etc/berth");
    std::fs::write(
        img.join("etc/berth/app.yaml"),
        "services:\n  main:\n    command: [\"/bin/sleep\", \"1000\"]\n",
    )
    .expect("app.yaml");
    let tid = lab.task_id("rec");
    let guard = TaskNetns::new(&tid);
    let mut spec = lab.spec(&tid, None);
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let task = with_labels(lab.task(&tid), &[("berth.bandwidth", "30mbit")]);
    let (d, mut exec) = start_in(&net.host, spec.clone(), task);
    d.wait_state(&tid, "TASK_RUNNING", Duration::from_secs(45));
    assert!(d.wait(T, |st| st.uuids.values().all(|a| *a)));
    let ips = |d: &AgentDouble| -> Vec<String> {
        d.state()
            .updates
            .iter()
            .filter(|u| u["state"] == "TASK_RUNNING")
            .filter_map(|u| {
                u["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect()
    };
    let first = ips(&d);
    assert_eq!(first.len(), 1, "{:#?}", d.state().updates);
    // Not what an agent does (it fails the task and never takes a dead executor back,
    // see e2e_recovery.rs): a test of the executor's re-attach code.
    d.state().accept_relaunch_after_death = true;
    // The acknowledgements reach the executor's checkpoint a moment after the agent sent
    // them (a networked task's one STARTING goes out with RUNNING, at the lease): killed
    // before that, its successor would rightly list the task as unacknowledged, which the
    // strict double reports. Not this test's subject.
    std::thread::sleep(Duration::from_millis(300));
    exec.kill();
    std::thread::sleep(Duration::from_millis(300));
    assert!(guard.path().exists(), "the network outlives its executor");
    let mut exec2 = net
        .host
        .run_in(|| d.spawn_executor(&spec, Duration::from_secs(10)));
    assert!(d.enforce_registration(&mut exec2), "{}", exec2.log());
    // Re-attached: RUNNING again, with the same address.
    assert!(
        d.wait(T, |st| st
            .states(&tid)
            .iter()
            .filter(|s| *s == "TASK_RUNNING")
            .count()
            == 2),
        "{}",
        exec2.log()
    );
    let both = ips(&d);
    assert_eq!(both, [first[0].clone(), first[0].clone()], "{both:?}");
    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);
    exec2
        .wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec2.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    assert!(!guard.path().exists(), "netns left behind");
    assert_host_clean(&net.host);
    lab.assert_clean();
}

/// A child process killed (SIGKILL) and reaped on drop.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_with_net_parent_prints_the_dhcp_address() {
    use std::io::{BufRead, BufReader};
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("netrun");
    let img = lab.images.join("busybox");
    std::fs::create_dir_all(img.join("etc/berth")).expect("etc/berth");
    std::fs::write(
        img.join("etc/berth/app.yaml"),
        "services:\n  main:\n    command: [\"/bin/sleep\", \"1000\"]\n",
    )
    .expect("app.yaml");
    let tid = lab.task_id("run");
    let guard = TaskNetns::new(&tid);
    let mut task = with_labels(lab.task(&tid), &[("berth.bandwidth", "40mbit")]);
    task.as_object_mut().expect("task").remove("executor");
    let task_file = lab.dir.path().join("task.json");
    std::fs::write(&task_file, serde_json::to_vec(&task).expect("json")).expect("task.json");
    let sandbox = lab.dir.path().join("sb");
    std::fs::create_dir_all(&sandbox).expect("sandbox");
    // Not `ip netns exec`: it remounts /sys, and runc would find no cgroup mount.
    let mut cmd = Command::new(&lab.executor);
    cmd.args(["run", "--task"])
        .arg(&task_file)
        .arg("--sandbox")
        .arg(&sandbox)
        .args(["--net-parent", &net.parent])
        .envs(lab.executor_env())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop(net.host.run_in(move || cmd.spawn().expect("spawn run")));
    let lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let mut states = Vec::new();
    let mut ip = None;
    let mut all = Vec::new();
    for line in lines {
        let line = line.expect("line");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let state = v["state"].as_str().expect("state").to_string();
        if state == "TASK_RUNNING" {
            ip = v["ip"].as_str().map(str::to_string);
            assert!(guard.path().exists());
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
        }
        states.push(state);
        all.push(line);
    }
    let status = child.0.wait().expect("wait");
    // One TASK_STARTING: a networked task's comes with its address.
    assert_eq!(
        states,
        ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"],
        "{all:#?}\n{}",
        std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default()
    );
    assert!(status.success());
    let ip = ip.expect("TASK_RUNNING without an ip");
    assert!(ip.starts_with("10.77.0."), "{ip}");
    assert!(!guard.path().exists(), "netns left behind");
    assert_host_clean(&net.host);
    lab.assert_clean();
}

const NET_ADMIN: u64 = 1 << 12;
const NET_RAW: u64 = 1 << 13;
const SYS_ADMIN: u64 = 1 << 21;

/// A capability set (`CapBnd:`, `CapEff:`, ...) from a `/proc/.../status` file.
fn cap_set(status_file: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(status_file).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .map(|h| u64::from_str_radix(h.trim(), 16).expect("hex"))
        .unwrap_or_else(|| panic!("{field} in {status_file}"))
}

/// The bounding set of each thread of `pid`.
fn thread_cap_bnds(pid: u32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("task dir")
        .flatten()
        .map(|t| cap_set(&format!("{}/status", t.path().display()), "CapBnd:"))
        .collect()
}

#[test]
fn a_plain_command_gets_a_dhcp_address_reported_in_running_and_released_at_kill() {
    lab::require_root();
    let net = lab::Lab::new();
    let lab = ExecLab::new("netcmd");
    // A plain `cmd` (no app spec in the image): the executor runs it as berth-init's one
    // service, so init acquires the lease before the command starts.
    let tid = lab.task_id("cmd");
    let guard = TaskNetns::new(&tid);
    let mut spec = lab.spec(
        &tid,
        Some(
            "ip -4 -o addr show dev eth0 > /mnt/mesos/sandbox/addr; \
             cat /proc/self/status > /mnt/mesos/sandbox/status; exec sleep 1000",
        ),
    );
    spec.env
        .push(("BERTH_EXECUTOR_NET_PARENT".into(), net.parent.clone()));
    let sandbox = spec.sandbox.clone();
    let (d, mut exec) = start_in(&net.host, spec, lab.task(&tid));
    d.wait_state(&tid, "TASK_RUNNING", Duration::from_secs(45));
    let running = d
        .state()
        .updates
        .iter()
        .find(|u| u["state"] == "TASK_RUNNING")
        .cloned()
        .expect("TASK_RUNNING update");
    let ipa = &running["container_status"]["network_infos"][0]["ip_addresses"][0];
    assert_eq!(ipa["protocol"], "IPv4", "{running}\n{}", exec.log());
    let ip: std::net::Ipv4Addr = ipa["ip_address"]
        .as_str()
        .unwrap_or_else(|| panic!("no address in {running}\n{}", exec.log()))
        .parse()
        .expect("an IPv4 address");
    let o = ip.octets();
    assert!(
        o[..3] == [10, 77, 0] && (100..=199).contains(&o[3]),
        "{ip} is not from dnsmasq's range"
    );
    assert!(
        net.dhcp.leases().contains(&ip.to_string()),
        "dnsmasq has no lease for {ip}: {}",
        net.dhcp.leases()
    );
    // The command started with the address already on eth0, and without the network
    // capabilities init keeps for DHCP.
    let seen = |name: &str| -> String {
        let p = sandbox.join(name);
        assert!(
            d.wait(T, |_| std::fs::metadata(&p).is_ok_and(|m| m.len() > 0)),
            "{name} never written"
        );
        std::fs::read_to_string(&p).expect("read")
    };
    let addr = seen("addr");
    assert!(addr.contains(&format!("inet {ip}/24")), "{addr}");
    let status_file = sandbox.join("status");
    seen("status");
    let status_file = status_file.display().to_string();
    for field in ["CapBnd:", "CapEff:", "CapPrm:"] {
        let c = cap_set(&status_file, field);
        assert_eq!(
            c & (NET_ADMIN | NET_RAW),
            0,
            "the command has {field} {c:x}"
        );
    }
    // The address answers from the LAN.
    let ping = net
        .lan
        .exec(&["busybox", "ping", "-c", "2", "-W", "2", &ip.to_string()]);
    assert!(
        ping.status.success(),
        "ping {ip} from the LAN: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );

    d.kill(&tid, Some(Duration::from_secs(5)));
    d.wait_state(&tid, "TASK_KILLED", T);
    // init gave the address back (RELEASE) once the command had stopped.
    assert!(
        net.dhcp
            .wait_for(&format!("DHCPRELEASE(br0) {ip}"), 1, Duration::from_secs(5)),
        "no RELEASE of {ip}: {}",
        net.dhcp.log()
    );
    assert!(
        !net.dhcp.leases().contains(&ip.to_string()),
        "the lease of {ip} is still held: {}",
        net.dhcp.leases()
    );
    exec.wait_exit(T)
        .unwrap_or_else(|| panic!("executor did not exit: {}", exec.log()));
    assert!(d.violations().is_empty(), "{:?}", d.violations());
    assert!(!guard.path().exists(), "netns left behind");
    assert_host_clean(&net.host);
    lab.assert_clean();
}
