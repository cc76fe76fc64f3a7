//! VM tier (device-mapper and 8021q, which the host kernel lacks): `berth-agent gc` on real
//! LVM and real VLAN sub-interfaces. Run by scripts/vm-tier.sh (`BERTH_VM_ONLY=vm_agent_gc`
//! for this file alone).
//!
//! - A live task (real executor, runc, a thin /home LV and a linear scratch LV, a macvlan on
//!   the VLAN sub-interface `nic0.100` of the lab's trunk, DHCP over that VLAN) runs while
//!   the executor of another task on the same VLAN is SIGKILLed right after each
//!   preparation step (`BERTH_EXECUTOR_CRASH_STEP`): `gc --dry-run` lists each leftover
//!   (the LVs, the dead task's use of `nic0.100`) and removes nothing; `gc` removes them
//!   and nothing of the live task (its LVs, its VLAN use, the link, its TASK_RUNNING).
//! - What no state dir claims: a record of a gone task on `nic0.100` loses only that record;
//!   `nic0.200` whose only user is gone goes.
//! - The live executor SIGKILLed too: `gc` removes its running container, its LVs and the
//!   now unused `nic0.100`.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_executor::task::runner::STEP_ORDER;
use berth_netcfg::names::{IfName, NetnsName};
use berth_tests::lab::{self, Ns};
use berth_tests::mesos::harness::{binary, Lab};
use berth_tests::mesos::{AgentDouble, ExecutorProcess};
use berth_tests::vm_lvm::{vm_only, Vg};

/// Generous: the VM emulates its CPUs, on a host that may be busy.
const T: Duration = Duration::from_secs(240);
const VID: u16 = 100;
/// Deletes netns pins and netcfg's VLAN records of this test on drop (the links go with
/// the lab's netns).
struct NetGuard {
    pins: Vec<PathBuf>,
    vlans: Vec<String>,
}

impl Drop for NetGuard {
    fn drop(&mut self) {
        for p in &self.pins {
            if p.exists() {
                let _ = Command::new("umount").arg("-l").arg(p).status();
                let _ = std::fs::remove_file(p);
            }
        }
        let dir = Path::new("/run/berth/vlan");
        for v in &self.vlans {
            let _ = std::fs::remove_dir_all(dir.join(v));
            let _ = std::fs::remove_file(dir.join(format!("{v}.lock")));
        }
    }
}

/// Leftovers of a failed run: the lab's containers, mounts, processes.
struct LabGuard<'a>(&'a Lab);

impl Drop for LabGuard<'_> {
    fn drop(&mut self) {
        self.0.tear_down_leftovers();
    }
}

/// The agent's config for `lab` with `lvm` as the /home backend.
fn agent_config(lab: &Lab, lvm: &Path) -> PathBuf {
    let p = lab.dir.path().join("agent-gc.toml");
    std::fs::write(
        &p,
        format!(
            "[serve]\nstate_dir = \"{}\"\n[metrics]\nlisten = \"\"\n[falcon]\nurl = \"\"\n\
             [gc]\ninterval_secs = 1\ngrace_secs = 0\nruntime_root = \"{}\"\nrun_dir = \"{}\"\n\
             sweep_unowned = true\nimage_cache = \"{}/image-cache\"\n\
             [resources.home]\nbackend = \"lvm\"\nlvm_config = \"{}\"\n",
            lab.state.display(),
            lab.runc_root.display(),
            lab.run.display(),
            lab.dir.path().display(),
            lvm.display()
        ),
    )
    .expect("agent config");
    p
}

/// `berth-agent gc [--dry-run]` in the host netns (where the trunk and its VLANs are), in
/// the mount namespace of the tests and the executors (`nsenter --net`, not `ip netns exec`,
/// whose private mount namespace would unmount volumes only for itself).
fn gc(host: &Ns, agent: &Path, cfg: &Path, dry: bool) -> (i32, String) {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", host.path().display()))
        .arg(agent)
        .args(["gc", "--config"])
        .arg(cfg);
    if dry {
        c.arg("--dry-run");
    }
    let out = c.output().expect("nsenter berth-agent gc");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn links(ns: &Ns) -> Vec<String> {
    let out = ns.ip(&["-o", "link", "show"]);
    let mut l: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect();
    l.sort();
    l
}

/// The lab's LAN answers DHCP on VLAN `VID` too: tagged frames from the trunk reach the
/// bridge itself untagged (VLAN filtering, the bridge's own port untagged in `VID`).
fn dhcp_over_vlan(net: &lab::Lab) {
    net.lan.ip(&[
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "vlan_filtering",
        "1",
    ]);
    let vid = VID.to_string();
    net.lan
        .exec_ok(&["bridge", "vlan", "add", "dev", "lan0", "vid", &vid]);
    net.lan.exec_ok(&[
        "bridge", "vlan", "add", "dev", "br0", "vid", &vid, "pvid", "untagged", "self",
    ]);
}

/// The task `tid` on VLAN `VID` with a 16 MB /home and a 32 MB disk.
fn vlan_task(lab: &Lab, tid: &str) -> serde_json::Value {
    let mut task = lab.task_with_home(tid, 16.0);
    task["resources"]
        .as_array_mut()
        .expect("resources")
        .push(serde_json::json!({"name": "disk", "type": "SCALAR", "scalar": {"value": 32.0}}));
    task["labels"]["labels"]
        .as_array_mut()
        .expect("labels")
        .push(serde_json::json!({"key": "berth.vlan", "value": VID.to_string()}));
    task
}

/// The binaries on the VM's tmpfs: Marathon's executor command chmods the executor (the
/// VM's root is read-only), and every exec from the VM's 9p root reads it over again.
struct Bins {
    executor: PathBuf,
    init: PathBuf,
    agent: PathBuf,
}

impl Bins {
    fn copy(lab: &Lab) -> Bins {
        let bin = lab.dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let copy = |from: &Path, name: &str| {
            let to = bin.join(name);
            std::fs::copy(from, &to).expect("copy a binary");
            to
        };
        Bins {
            executor: copy(&lab.executor, "berth-executor"),
            init: copy(&lab.init, "berth-init"),
            agent: copy(&binary("berth-agent"), "berth-agent"),
        }
    }
}

fn spec(
    lab: &Lab,
    bins: &Bins,
    tid: &str,
    net: &lab::Lab,
    lvm: &Path,
    crash: Option<&str>,
) -> berth_tests::mesos::ExecutorSpec {
    let mut spec = lab.spec(tid, Some("exec sleep 1000"));
    spec.binary = bins.executor.clone();
    for (k, v) in spec.env.iter_mut() {
        if k == "BERTH_EXECUTOR_INIT" {
            *v = bins.init.display().to_string();
        }
    }
    for (k, v) in [
        ("BERTH_EXECUTOR_VOLUME_BACKEND", "lvm".to_string()),
        (
            "BERTH_EXECUTOR_VOLUME_LVM_CONFIG",
            lvm.display().to_string(),
        ),
        ("BERTH_EXECUTOR_NET_PARENT", net.parent.clone()),
    ] {
        spec.env.push((k.into(), v));
    }
    if let Some(step) = crash {
        spec.env
            .push(("BERTH_EXECUTOR_CRASH_STEP".into(), step.into()));
    }
    spec
}

/// The executor of `spec` for `task`, started by an agent double in the host netns (Mesos'
/// default executor_registration_timeout, 1 min: a debug build under emulation is slow).
fn start(
    net: &lab::Lab,
    spec: berth_tests::mesos::ExecutorSpec,
    task: serde_json::Value,
) -> (AgentDouble, ExecutorProcess) {
    net.host.run_in(move || {
        let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
        d.launch_on_subscribe(task);
        let exec = d.spawn_executor(&spec, Duration::from_secs(60));
        (d, exec)
    })
}

/// The kinds of leftovers the steps up to and including `step` make, as `gc` names them.
fn expected(step: &str, link: &str, tid: &str) -> Vec<String> {
    let at = STEP_ORDER.iter().position(|s| *s == step).expect("a step");
    let reached = |s: &str| {
        STEP_ORDER
            .iter()
            .position(|x| *x == s)
            .is_some_and(|i| i <= at)
    };
    let mut k = vec!["statedir ".to_string(), "volume berth-root-".to_string()];
    for (s, kind) in [
        ("volume", "volume berth-home-".to_string()),
        ("network", "netns ".to_string()),
        // The live task uses the link too: only the dead one's use goes.
        ("network", format!("vlan {link} (use by task {tid})")),
        ("container", "container ".to_string()),
    ] {
        if reached(s) {
            k.push(kind);
        }
    }
    k
}

/// Waits for TASK_RUNNING of `tid`; on a timeout or another state, fails with the
/// executor's log and the DHCP server's.
fn wait_running(d: &AgentDouble, tid: &str, exec: &mut ExecutorProcess, net: &lab::Lab) {
    let end = std::time::Instant::now() + T;
    loop {
        let states = d.state().states(tid);
        if states.iter().any(|s| s == "TASK_RUNNING") {
            return;
        }
        let exited = exec.wait_exit(Duration::ZERO);
        let bad = states.iter().any(|s| s != "TASK_STARTING");
        if bad || exited.is_some() || std::time::Instant::now() >= end {
            panic!(
                "{tid}: no TASK_RUNNING: states {states:?}, executor {exited:?}\n\
                 executor log:\n{}\ndnsmasq log:\n{}",
                exec.log(),
                net.dhcp.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A record of `owner` using `<trunk>.<vid>`, made by netcfg as a setup would (the link
/// too if needed), in the host netns.
fn acquire(host: &Ns, trunk: &str, vid: u16, owner: &str) {
    let (trunk, owner) = (IfName::new(trunk).expect("trunk"), owner.to_string());
    host.run_in(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async move {
                let h = berth_netcfg::conn::connect().expect("netlink");
                berth_netcfg::link::vlan::acquire_vlan(
                    &h,
                    Path::new("/run/berth"),
                    &trunk,
                    vid,
                    &owner,
                )
                .await
                .expect("acquire");
            })
    });
}

#[test]
fn vm_agent_gc_after_kill_9_at_every_step_leaves_the_live_task() {
    vm_only();
    let vg = Vg::new("g", 1024, 512);
    let lvm = vg.config(true);
    let net = lab::Lab::new();
    dhcp_over_vlan(&net);
    let lab = Lab::new("vm-gc");
    let _leftovers = LabGuard(&lab);
    let link = format!("{}.{VID}", net.parent);
    let mut guard = NetGuard {
        pins: Vec::new(),
        vlans: vec![link.clone(), format!("{}.200", net.parent)],
    };
    let cfg = agent_config(&lab, &lvm);
    let bins = Bins::copy(&lab);
    let pin =
        |tid: &str| Path::new("/run/netns").join(NetnsName::for_task(tid).expect("netns").as_str());

    // The live task: running on the VLAN, with its thin /home and its scratch LV.
    let live = lab.task_id("live");
    guard.pins.push(pin(&live));
    let (live_d, mut live_exec) = start(
        &net,
        spec(&lab, &bins, &live, &net, &lvm, None),
        vlan_task(&lab, &live),
    );
    wait_running(&live_d, &live, &mut live_exec, &net);
    let live_lvs: Vec<(String, String)> = vg.berth_lvs();
    assert_eq!(live_lvs.len(), 2, "a /home and a scratch LV: {live_lvs:?}");
    assert!(live_lvs.iter().all(|(_, o)| *o == live), "{live_lvs:?}");
    assert_eq!(links(&net.host), ["lo", "nic0", link.as_str()]);
    let live_is_untouched = |when: &str| {
        assert_eq!(vg.berth_lvs(), live_lvs, "{when}: the live task's LVs");
        assert!(links(&net.host).contains(&link), "{when}: {link} went");
        let (users, _) = berth_netcfg::link::vlan::users_of(
            Path::new("/run/berth"),
            &IfName::new(&link).expect("link"),
        );
        assert!(
            users.contains(&live),
            "{when}: the live task's use went: {users:?}"
        );
        assert!(pin(&live).exists(), "{when}: the live task's netns went");
        assert!(lab.state.join(format!("berth-{live}")).is_dir(), "{when}");
        let states = live_d.state().states(&live);
        assert_eq!(
            states.last().map(String::as_str),
            Some("TASK_RUNNING"),
            "{when}: {states:?}"
        );
    };

    for step in STEP_ORDER {
        let tid = lab.task_id(step);
        guard.pins.push(pin(&tid));
        let (_d, mut exec) = start(
            &net,
            spec(&lab, &bins, &tid, &net, &lvm, Some(step)),
            vlan_task(&lab, &tid),
        );
        let st = exec
            .wait_exit(T)
            .unwrap_or_else(|| panic!("{step}: the executor did not die: {}", exec.log()));
        assert_eq!(st.signal(), Some(9), "{step}: {st:?}: {}", exec.log());
        let left = vg.berth_lvs();
        // The dry run lists each kind, why, and removes nothing; nothing of the live task.
        let (code, dry) = gc(&net.host, &bins.agent, &cfg, true);
        assert_eq!(code, 0, "{step}: {dry}");
        for kind in expected(step, &link, &tid) {
            assert!(
                dry.contains(&format!("would remove {kind}")),
                "{step}: no {kind:?} in:\n{dry}"
            );
        }
        assert!(
            dry.contains(&format!("task {tid}: its executor is gone")),
            "{step}: {dry}"
        );
        assert!(!dry.contains(&live), "{step}: the live task listed:\n{dry}");
        assert!(
            dry.contains("1 live container(s) left alone"),
            "{step}: {dry}"
        );
        assert_eq!(vg.berth_lvs(), left, "{step}: the dry run removed LVs");
        assert!(
            left.iter().any(|(_, o)| *o == tid),
            "{step}: no LV of the dead task"
        );
        // The real run removes it all, and nothing of the live task.
        let (code, out) = gc(&net.host, &bins.agent, &cfg, false);
        assert_eq!(code, 0, "{step}: {out}");
        for kind in expected(step, &link, &tid) {
            assert!(
                out.contains(&format!("removed {kind}")),
                "{step}: no {kind:?} in:\n{out}"
            );
        }
        assert!(!out.contains("FAILED"), "{step}: {out}");
        assert!(!pin(&tid).exists(), "{step}: netns left");
        assert!(
            !lab.state.join(format!("berth-{tid}")).exists(),
            "{step}: state dir left"
        );
        live_is_untouched(step);
        let (code, again) = gc(&net.host, &bins.agent, &cfg, false);
        assert!(
            code == 0 && again.starts_with("removed 0 item(s)"),
            "{step}: {again}"
        );
    }

    // What no state dir claims: a gone task's record on the live link (only the record
    // goes), and a link whose only user is gone (the link goes).
    acquire(&net.host, &net.parent, VID, "ghost.task");
    acquire(&net.host, &net.parent, 200, "gone.task");
    let other = format!("{}.200", net.parent);
    assert!(links(&net.host).contains(&other));
    let (code, dry) = gc(&net.host, &bins.agent, &cfg, true);
    assert_eq!(code, 0, "{dry}");
    assert!(
        dry.contains(&format!(
            "would remove vlan {link} (use by task ghost.task): no live task uses it"
        )),
        "{dry}"
    );
    assert!(dry.contains(&format!("would remove vlan {other}: no live task uses it (each recorded user's task is gone): gone.task")), "{dry}");
    assert!(
        links(&net.host).contains(&other),
        "the dry run removed {other}"
    );
    let (code, out) = gc(&net.host, &bins.agent, &cfg, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("removed vlan {other}: no live task uses it")),
        "{out}"
    );
    assert!(
        out.contains(&format!("removed vlan {link} (use by task ghost.task)")),
        "{out}"
    );
    assert!(!links(&net.host).contains(&other), "{out}");
    live_is_untouched("sweep");

    // The live executor killed too: its running container, LVs and the last use of the
    // link go, the link with it.
    live_exec.kill();
    let (code, out) = gc(&net.host, &bins.agent, &cfg, false);
    assert_eq!(code, 0, "{out}");
    for kind in [
        "container ",
        "volume berth-home-",
        "volume berth-root-",
        "netns ",
    ] {
        assert!(
            out.contains(&format!("removed {kind}")),
            "no {kind:?} in:\n{out}"
        );
    }
    assert!(
        out.contains(&format!("removed vlan {link}: task {live}: its executor is gone (task lock free); it was the last user")),
        "{out}"
    );
    assert_eq!(links(&net.host), ["lo", "nic0"], "{out}");
    assert!(vg.berth_lvs().is_empty(), "{:?}", vg.berth_lvs());
    lab.assert_clean();
}
