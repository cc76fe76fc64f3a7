//! berth-executor vs the bare runtime, for runc and for crun, in one run:
//! LAUNCH-to-TASK_RUNNING and KILL-to-TASK_KILLED latency (median and p95 over 20 tasks
//! each) of berth-executor with `BERTH_EXECUTOR_RUNTIME=runc` and `=crun`, against a shell
//! script that does `<runtime> run -d` until `<runtime> state` says running, and
//! `<runtime> kill TERM` until the container is gone, with the same bundle (the
//! config.json berth-executor wrote, root filesystem = the image). The task is the plain
//! command `exec sleep 1000` in all four: berth-init in supervisor mode running it as its
//! one service (`--spec /run/berth/app.yaml`, the spec the executor generated, copied
//! into the anchor's run dir). The four are interleaved task by task, so that load from
//! elsewhere falls on all of them alike.
//!
//! On a cgroups v1 hybrid host whose v2 hierarchy holds a controller, crun refuses to
//! create containers; berth then runs it with that hierarchy detached (see the executor's
//! `task::runc`), and so does the crun anchor (`unshare -m` + `umount -l`).
//!
//! For runc also: berth over a TLS agent double (LIBPROCESS_SSL_*, client certificate,
//! verification on), and, with BERTH_BENCH_OLD_EXECUTOR=<binary>, an older executor
//! build on the plain and the TLS double, printed as ratios to this build
//! (BERTH_BENCH_OLD_TLS=0 for a build from before TLS: the plain double only).
//!
//! Run (root): `cargo build --release -p berth-executor -p berth-init --bins && cargo bench -p berth-tests --bench executor`
//! (binaries are taken next to the bench's deps dir; BERTH_BENCH_TASKS overrides 20;
//! BERTH_BENCH_LOGS=<dir> keeps each berth task's executor log there, e.g. with
//! RUST_LOG=berth_executor=trace for the runtime commands and their durations).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::{RuntimeLab, TestRuntime};
use berth_tests::mesos::AgentDouble;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(30);

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// One berth task: (launch->running, kill->killed) in ms; also returns its bundle config
/// and the app spec generated for the command.
fn berth_once(lab: &RuntimeLab, i: usize, agent: Agent) -> (f64, f64, Option<(Value, Vec<u8>)>) {
    let tid = lab.task_id(&format!("b{i}"));
    let mut spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = match agent {
        Agent::Plain => AgentDouble::start(&spec.framework_id, &spec.executor_id),
        Agent::Tls => AgentDouble::start_tls(&spec.framework_id, &spec.executor_id),
        Agent::OldBinary(ref bin) => {
            spec.binary = bin.clone();
            AgentDouble::start(&spec.framework_id, &spec.executor_id)
        }
        Agent::OldTls(ref bin) => {
            spec.binary = bin.clone();
            AgentDouble::start_tls(&spec.framework_id, &spec.executor_id)
        }
    };
    d.state().ack_delay = Duration::from_millis(0);
    let mut exec = d.spawn_executor(&spec, Duration::from_secs(10));
    assert!(d.enforce_registration(&mut exec));
    assert!(d.wait(T, |st| st.stream.is_some()));
    let t0 = Instant::now();
    d.launch(lab.task(&tid));
    d.wait_state(&tid, "TASK_RUNNING", T);
    let launch = t0.elapsed().as_secs_f64() * 1e3;
    let config = std::fs::read_dir(&lab.state)
        .ok()
        .and_then(|mut it| {
            it.find_map(|e| {
                e.ok()
                    .map(|e| e.path().join("bundle/config.json"))
                    .filter(|p| p.exists())
            })
        })
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let app_spec = std::fs::read_dir(&lab.run).ok().and_then(|mut it| {
        it.find_map(|e| {
            e.ok()
                .and_then(|e| std::fs::read(e.path().join("app.yaml")).ok())
        })
    });
    let config = config.zip(app_spec);
    let t1 = Instant::now();
    d.kill(&tid, None);
    d.wait_state(&tid, "TASK_KILLED", T);
    let kill = t1.elapsed().as_secs_f64() * 1e3;
    exec.wait_exit(T).expect("executor exits");
    if let Some(dir) = std::env::var_os("BERTH_BENCH_LOGS") {
        let to = Path::new(&dir).join(format!("{}-{i}.log", lab.runtime.binary()));
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(spec.sandbox.join("stderr"), to);
    }
    lab.assert_clean();
    (launch, kill, config)
}

/// How berth_once reaches the agent: plain HTTP, TLS (LIBPROCESS_SSL_*, a client
/// certificate, verification on), or plain with another executor binary (an older
/// build, for before/after figures: BERTH_BENCH_OLD_EXECUTOR), and that over TLS.
#[derive(Clone)]
enum Agent {
    Plain,
    Tls,
    OldBinary(std::path::PathBuf),
    OldTls(std::path::PathBuf),
}

const SCRIPT: &str = r#"set -e
rt="$1"; root="$2"; bundle="$3"; id="$4"; out="$5"; v1only="$6"
now() { date +%s%N; }
run_d() {
  if [ "$v1only" = 1 ]; then
    unshare -m --propagation slave sh -c 'umount -l /sys/fs/cgroup/unified && exec "$@"' sh \
      "$rt" --root "$root" run -d --bundle "$bundle" "$id"
  else
    "$rt" --root "$root" run -d --bundle "$bundle" "$id"
  fi
}
t0=$(now)
run_d </dev/null >/dev/null 2>&1
until "$rt" --root "$root" state "$id" 2>/dev/null | grep -q '"status": "running"'; do :; done
t1=$(now)
# A TERM that lands before the container's init has set up its signal handling is lost
# (PID 1 has no default action), so repeat it until the container stops.
while "$rt" --root "$root" state "$id" 2>/dev/null | grep -q '"status": "running"'; do
  "$rt" --root "$root" kill "$id" TERM 2>/dev/null || true; sleep 0.005
done
"$rt" --root "$root" delete --force "$id"
t2=$(now)
echo $(( (t1-t0)/1000 )) $(( (t2-t1)/1000 )) >"$out""#;

/// Whether crun needs the hybrid v2 hierarchy hidden here (see the module doc).
fn hybrid_with_v2_controllers() -> bool {
    let v2_root = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let ctrls =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    !v2_root && !ctrls.trim().is_empty()
}

/// The anchor's bundle: berth's config.json with the image as the root filesystem and its
/// own run dir (holding berth's generated app spec) and sandbox.
fn anchor_bundle(
    lab: &RuntimeLab,
    (mut config, app_spec): (Value, Vec<u8>),
) -> (std::path::PathBuf, Value) {
    config["root"]["path"] = json!(lab.images.join("busybox"));
    let base = lab.dir.path();
    let (bundle, sandbox, run_dir) = (
        base.join("anchor-bundle"),
        base.join("sandboxes").join("anchor"),
        base.join("anchor-run"),
    );
    for d in [&bundle, &sandbox, &run_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::write(run_dir.join("app.yaml"), app_spec).unwrap();
    for m in config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/run/berth" {
            m["source"] = json!(run_dir);
        }
        if m["destination"] == "/mnt/mesos/sandbox" {
            m["source"] = json!(sandbox);
        }
    }
    (bundle, config)
}

/// One anchor task: (run -d -> running, kill -> gone) in ms.
fn anchor_once(lab: &RuntimeLab, bundle: &Path, config: &Value, i: usize) -> (f64, f64) {
    let mut c = config.clone();
    let id = format!("anchor-{}-{i}", std::process::id());
    c["linux"]["cgroupsPath"] = json!(format!("/{}/{id}", lab.cgroup_parent));
    std::fs::write(bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    let v1only = lab.runtime == TestRuntime::Crun && hybrid_with_v2_controllers();
    // The figures go to a file, not a pipe: the container outlives the script, and
    // nothing it may hold must keep the bench waiting.
    let result = lab.dir.path().join("anchor-result");
    let _ = std::fs::remove_file(&result);
    let status = Command::new("bash")
        .args(["-c", SCRIPT, "anchor"])
        .arg(lab.runtime.binary())
        .arg(&lab.runc_root)
        .arg(bundle)
        .arg(&id)
        .arg(&result)
        .arg(if v1only { "1" } else { "0" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bash");
    let text = std::fs::read_to_string(&result).unwrap_or_default();
    let v: Vec<f64> = text
        .split_whitespace()
        .filter_map(|x| x.parse::<f64>().ok())
        .map(|us| us / 1e3)
        .collect();
    assert!(
        status.success() && v.len() == 2,
        "{} anchor script failed: {text:?}",
        lab.runtime.binary()
    );
    (v[0], v[1])
}

/// The figures of one runtime: berth and anchor, launch and kill.
#[derive(Default)]
struct Figures {
    berth_launch: Vec<f64>,
    berth_kill: Vec<f64>,
    anchor_launch: Vec<f64>,
    anchor_kill: Vec<f64>,
    /// runc only: the same over TLS, and with the older binary.
    tls_launch: Vec<f64>,
    tls_kill: Vec<f64>,
    old_launch: Vec<f64>,
    old_kill: Vec<f64>,
    old_tls_launch: Vec<f64>,
    old_tls_kill: Vec<f64>,
}

fn main() {
    let n: usize = std::env::var("BERTH_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let old = std::env::var_os("BERTH_BENCH_OLD_EXECUTOR").map(std::path::PathBuf::from);
    // An older build from before the executor spoke TLS: BERTH_BENCH_OLD_TLS=0.
    let old_tls = std::env::var("BERTH_BENCH_OLD_TLS").as_deref() != Ok("0");
    let runtimes = [TestRuntime::Runc, TestRuntime::Crun];
    let labs: Vec<RuntimeLab> = runtimes
        .iter()
        .map(|rt| RuntimeLab::new("bench", *rt))
        .collect();
    let mut figs: Vec<Figures> = runtimes.iter().map(|_| Figures::default()).collect();
    let mut anchors: Vec<Option<(std::path::PathBuf, Value)>> = vec![None, None];
    for i in 0..n {
        for (k, lab) in labs.iter().enumerate() {
            let (l, kl, config) = berth_once(lab, i, Agent::Plain);
            figs[k].berth_launch.push(l);
            figs[k].berth_kill.push(kl);
            if k == 0 {
                let (l, kl, _) = berth_once(lab, i, Agent::Tls);
                figs[k].tls_launch.push(l);
                figs[k].tls_kill.push(kl);
                if let Some(old) = &old {
                    let (l, kl, _) = berth_once(lab, i, Agent::OldBinary(old.clone()));
                    figs[k].old_launch.push(l);
                    figs[k].old_kill.push(kl);
                    if old_tls {
                        let (l, kl, _) = berth_once(lab, i, Agent::OldTls(old.clone()));
                        figs[k].old_tls_launch.push(l);
                        figs[k].old_tls_kill.push(kl);
                    }
                }
            }
            if anchors[k].is_none() {
                let config = config.expect("berth's bundle config.json and app spec");
                anchors[k] = Some(anchor_bundle(lab, config));
            }
            let (bundle, config) = anchors[k].as_ref().unwrap();
            let (al, ak) = anchor_once(lab, bundle, config, i);
            figs[k].anchor_launch.push(al);
            figs[k].anchor_kill.push(ak);
        }
    }
    for lab in &labs {
        lab.assert_clean();
    }
    println!("executor benchmark, {n} tasks each, interleaved (ms)");
    println!("{:<40} {:>9} {:>9}", "", "median", "p95");
    let row = |name: String, v: &mut Vec<f64>| {
        let (m, p) = (pct(v, 0.5), pct(v, 0.95));
        println!("{name:<40} {m:>9.1} {p:>9.1}");
        m
    };
    let mut ratios = Vec::new();
    let mut extra = Vec::new();
    for (rt, f) in runtimes.iter().zip(figs.iter_mut()) {
        let b = rt.binary();
        let bl = row(
            format!("berth+{b} LAUNCH -> TASK_RUNNING"),
            &mut f.berth_launch,
        );
        let al = row(
            format!("{b} run -d -> running (anchor)"),
            &mut f.anchor_launch,
        );
        let bk = row(format!("berth+{b} KILL -> TASK_KILLED"), &mut f.berth_kill);
        let ak = row(format!("{b} kill -> gone (anchor)"), &mut f.anchor_kill);
        ratios.push((b, bl / al, bk / ak));
        if !f.tls_launch.is_empty() {
            let tl = row(
                format!("berth+{b} over TLS LAUNCH -> RUNNING"),
                &mut f.tls_launch,
            );
            let tk = row(
                format!("berth+{b} over TLS KILL -> KILLED"),
                &mut f.tls_kill,
            );
            extra.push(format!(
                "ratio berth+{b} TLS/plain (median): launch {:.2}, kill {:.2}",
                tl / bl,
                tk / bk
            ));
        }
        if !f.old_launch.is_empty() {
            let ol = row(
                format!("older berth+{b} LAUNCH -> RUNNING"),
                &mut f.old_launch,
            );
            let ok = row(format!("older berth+{b} KILL -> KILLED"), &mut f.old_kill);
            extra.push(format!(
                "ratio berth+{b} this/older binary (median): launch {:.2}, kill {:.2}",
                bl / ol,
                bk / ok
            ));
            if f.old_tls_launch.is_empty() {
                continue;
            }
            let otl = row(
                format!("older berth+{b} over TLS LAUNCH -> RUNNING"),
                &mut f.old_tls_launch,
            );
            let otk = row(
                format!("older berth+{b} over TLS KILL -> KILLED"),
                &mut f.old_tls_kill,
            );
            if !f.tls_launch.is_empty() {
                let (tl, tk) = (pct(&mut f.tls_launch, 0.5), pct(&mut f.tls_kill, 0.5));
                extra.push(format!(
                    "ratio berth+{b} over TLS this/older binary (median): launch {:.2}, kill {:.2}",
                    tl / otl,
                    tk / otk
                ));
            }
        }
    }
    for (b, l, k) in ratios {
        println!("ratio berth+{b}/{b} (median): launch {l:.2}, kill {k:.2}");
    }
    for e in extra {
        println!("{e}");
    }
}
