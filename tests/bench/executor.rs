//! berth-executor vs the bare runtime: LAUNCH-to-TASK_RUNNING and KILL-to-TASK_KILLED
//! latency (median and p95 over 20 tasks), against a shell script that does `runc run -d`
//! until `runc state` says running, and `runc kill TERM` until the container is gone, with
//! the same bundle (the config.json berth-executor wrote, root filesystem = the image).
//! The task is the plain command `exec sleep 1000` in both: berth-init in supervisor mode
//! running it as its one service (`--spec /run/berth/app.yaml`, the spec the executor
//! generated, copied into the anchor's run dir).
//!
//! Run (root): `cargo build --workspace --bins && cargo bench -p berth-tests --bench executor --profile dev`
//! (binaries are taken next to the bench's deps dir; BERTH_BENCH_TASKS overrides 20).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::mesos::harness::Lab;
use berth_tests::mesos::AgentDouble;

const T: Duration = Duration::from_secs(30);

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

/// One berth task: (launch->running, kill->killed) in ms; also returns its bundle config
/// and the app spec generated for the command.
fn berth_once(lab: &Lab, i: usize) -> (f64, f64, Option<(serde_json::Value, Vec<u8>)>) {
    let tid = lab.task_id(&format!("b{i}"));
    let spec = lab.spec(&tid, Some("exec sleep 1000"));
    let d = AgentDouble::start(&spec.framework_id, &spec.executor_id);
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
    lab.assert_clean();
    (launch, kill, config)
}

const SCRIPT: &str = r#"set -e
rt=runc; root="$1"; bundle="$2"; id="$3"  # $4: where the figures go
now() { date +%s%N; }
t0=$(now)
$rt --root "$root" run -d --bundle "$bundle" "$id" </dev/null >/dev/null 2>&1
until $rt --root "$root" state "$id" 2>/dev/null | grep -q '"status": "running"'; do :; done
t1=$(now)
# A TERM that lands before the container's init has set up its signal handling is lost
# (PID 1 has no default action), so repeat it until the container stops.
while $rt --root "$root" state "$id" 2>/dev/null | grep -q '"status": "running"'; do
  $rt --root "$root" kill "$id" TERM 2>/dev/null || true; sleep 0.005
done
$rt --root "$root" delete --force "$id"
t2=$(now)
echo $(( (t1-t0)/1000 )) $(( (t2-t1)/1000 )) >"$4""#;

fn main() {
    let n: usize = std::env::var("BERTH_BENCH_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let lab = Lab::new("bench");
    let (mut bl, mut bk) = (Vec::new(), Vec::new());
    let mut config = None;
    for i in 0..n {
        let (l, k, c) = berth_once(&lab, i);
        bl.push(l);
        bk.push(k);
        config = config.or(c);
    }
    // The anchor: the same bundle run by a shell script.
    let (mut config, app_spec) = config.expect("berth's bundle config.json and app spec");
    config["root"]["path"] = serde_json::json!(lab.images.join("busybox"));
    let bundle = lab.dir.path().join("anchor-bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let sandbox = lab.dir.path().join("sandboxes").join("anchor");
    std::fs::create_dir_all(&sandbox).unwrap();
    let run_dir = lab.dir.path().join("anchor-run");
    std::fs::create_dir_all(&run_dir).unwrap();
    std::fs::write(run_dir.join("app.yaml"), app_spec).unwrap();
    for m in config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/run/berth" {
            m["source"] = serde_json::json!(run_dir);
        }
        if m["destination"] == "/mnt/mesos/sandbox" {
            m["source"] = serde_json::json!(sandbox);
        }
    }
    let (mut al, mut ak) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut c = config.clone();
        let id = format!("anchor-{}-{i}", std::process::id());
        c["linux"]["cgroupsPath"] = serde_json::json!(format!("/{}/{id}", lab.cgroup_parent));
        std::fs::write(bundle.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
        // The figures go to a file, not a pipe: the container outlives the script, and
        // nothing it may hold must keep the bench waiting.
        let result = lab.dir.path().join("anchor-result");
        let status = Command::new("bash")
            .args(["-c", SCRIPT, "anchor"])
            .arg(&lab.runc_root)
            .arg(&bundle)
            .arg(&id)
            .arg(&result)
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
            "anchor script failed: {text:?}"
        );
        al.push(v[0]);
        ak.push(v[1]);
    }
    lab.assert_clean();
    println!("executor benchmark, {n} tasks each (ms)");
    println!("{:<34} {:>9} {:>9}", "", "median", "p95");
    let rows = [
        ("berth LAUNCH -> TASK_RUNNING", &mut bl),
        ("runc run -d -> running (anchor)", &mut al),
        ("berth KILL -> TASK_KILLED", &mut bk),
        ("runc kill -> gone (anchor)", &mut ak),
    ];
    let mut med = Vec::new();
    for (name, v) in rows {
        let (m, p) = (pct(v, 0.5), pct(v, 0.95));
        med.push(m);
        println!("{name:<34} {m:>9.1} {p:>9.1}");
    }
    println!("ratio launch berth/anchor (median): {:.2}", med[0] / med[1]);
    println!("ratio kill   berth/anchor (median): {:.2}", med[2] / med[3]);
}
