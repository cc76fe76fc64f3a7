//! The OCI bundle: `config.json` for runc, typed with the `oci-spec` crate.
//!
//! Namespaces pid, mount, uts, ipc and network (a prepared netns path when networking is
//! configured, else a new empty one with only loopback); cgroup CPU and memory limits from
//! the resources; the hostname; berth-init bind-mounted read-only from the host as the
//! process; the task's run dir at `/run/berth`; the Mesos sandbox; least capabilities.
//!
//! Hardening ([`Hardening`], the executor's settings): a cgroup namespace; a seccomp
//! profile ([`seccomp`]); Docker's masked and read-only /proc and /sys paths; memory+swap
//! limited to the memory limit where the host accounts swap; explicit RLIMIT_NOFILE and
//! RLIMIT_CORE (not the Mesos agent's); `noNewPrivileges` stays off (images' setuid
//! programs: su, sudo, ping).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::config::hardening::{Hardening, HardeningError};
use super::plan::{Plan, INIT_PATH, SANDBOX};

pub use super::seccomp;

/// Docker's (moby's) masked paths: each hidden by /dev/null or an empty read-only tmpfs.
/// `/sys/devices/virtual/powercap`: RAPL energy counters (CVE-2020-8694 side channel).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Capabilities berth-init keeps for itself only (DHCP) and drops for the services it
/// starts, and so for COMMAND health checks.
pub const INIT_ONLY_CAPS: &[&str] = &["CAP_NET_ADMIN", "CAP_NET_RAW"];

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the generated OCI spec does not parse")]
    Spec(#[from] serde_json::Error),
    #[error(transparent)]
    Hardening(#[from] HardeningError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        err: oci_spec::OciSpecError,
    },
}

/// Host paths the bundle refers to.
#[derive(Debug, Clone)]
pub struct BundleInputs<'a> {
    pub plan: &'a Plan,
    pub init: &'a Path,
    pub run_dir: &'a Path,
    pub sandbox: &'a Path,
    pub cgroup_parent: &'a str,
    /// A network namespace prepared by the network step (`/run/netns/<name>`).
    pub netns: Option<&'a Path>,
    /// Extra bind mounts from other steps: (host source, container destination, read-only).
    pub binds: &'a [(PathBuf, String, bool)],
}

/// Docker's default capability set less NET_RAW; with a prepared network berth-init also
/// gets NET_ADMIN and NET_RAW (DHCP on eth0) and drops them for the services it starts.
fn capabilities(network: bool) -> Vec<&'static str> {
    let mut caps = vec![
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ];
    if network {
        caps.extend(["CAP_NET_ADMIN", "CAP_NET_RAW"]);
    }
    caps
}

fn bind(src: &Path, dst: &str, ro: bool) -> Value {
    let mut opts = vec!["rbind", "rprivate", "nosuid", "nodev"];
    if ro {
        opts.push("ro");
    }
    json!({"destination": dst, "type": "bind", "source": src, "options": opts})
}

/// Builds the spec with the hardening settings of the executor's environment.
pub fn spec(i: &BundleInputs<'_>) -> Result<Spec, BundleError> {
    spec_with(i, &Hardening::from_env()?)
}

/// Builds the spec (no I/O but an operator's seccomp file), so it can be checked field by
/// field in unit tests.
pub fn spec_with(i: &BundleInputs<'_>, h: &Hardening) -> Result<Spec, BundleError> {
    let p = i.plan;
    let caps = capabilities(i.netns.is_some());
    let mut net = json!({"type": "network"});
    if let Some(ns) = i.netns {
        net["path"] = json!(ns);
    }
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "pids": {"limit": 4096},
    });
    if p.mem_mb > 0.0 {
        let limit = (p.mem_mb * 1024.0 * 1024.0) as i64;
        resources["memory"] = json!({"limit": limit});
        if h.no_swap && h.swap_accounting {
            // memory+swap (memsw): no swap beyond the memory limit.
            resources["memory"]["swap"] = json!(limit);
        }
    }
    if p.cpus > 0.0 {
        let period: u64 = 100_000;
        resources["cpu"] = json!({
            "shares": ((p.cpus * 1024.0) as u64).max(2),
            "quota": ((p.cpus * period as f64) as i64).max(1000),
            "period": period,
        });
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        bind(i.run_dir, "/run/berth", false),
        bind(i.init, INIT_PATH, true),
        bind(i.sandbox, SANDBOX, false),
    ];
    for (src, dst, ro) in i.binds {
        mounts.push(bind(src, dst, *ro));
    }
    let mut doc = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": p.args(),
            "env": p.env,
            "cwd": p.cwd(),
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            // Images may rely on setuid programs (su, sudo for operator logins, ping);
            // they gain at most the bounding set above.
            "noNewPrivileges": false,
            "rlimits": [
                {"type": "RLIMIT_NOFILE", "soft": h.nofile.0, "hard": h.nofile.1},
                {"type": "RLIMIT_CORE", "soft": h.core.0, "hard": h.core.1},
            ],
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": p.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/{}/{}", i.cgroup_parent, p.container_id),
            "resources": resources,
            "namespaces": [{"type": "pid"}, net, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
                {"type": "cgroup"}],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    });
    if let Some(profile) = h.seccomp.profile()? {
        doc["linux"]["seccomp"] = profile;
    }
    Ok(serde_json::from_value(doc)?)
}

/// The process of a COMMAND health check, from the container's own (`process` of its
/// `config.json`: env, cwd, user, rlimits): `args`, and the services' capabilities (the
/// container's less [`INIT_ONLY_CAPS`]), for `runc exec --process`.
pub fn check_process(container_process: &Value, args: &[&str]) -> Value {
    let mut p = container_process.clone();
    p["args"] = json!(args);
    p["terminal"] = json!(false);
    if let Some(caps) = p["capabilities"].as_object_mut() {
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.retain(|c| !c.as_str().is_some_and(|c| INIT_ONLY_CAPS.contains(&c)));
            }
        }
    }
    p
}

/// Writes `config.json` into the bundle directory.
pub fn write(bundle: &Path, spec: &Spec) -> Result<(), BundleError> {
    let path = bundle.join("config.json");
    spec.save(&path)
        .map_err(|err| BundleError::Write { path, err })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::task::plan::Mode;

    /// A command task's plan (also the base of the appspec step's tests).
    pub(in crate::task) fn plan() -> Plan {
        Plan {
            task_id: "web.1".into(),
            container_id: "berth-web.1".into(),
            hostname: "web".into(),
            cpus: 0.5,
            mem_mb: 64.0,
            disk_mb: 0.0,
            ports: vec![],
            home_mb: 0.0,
            bandwidth_mbit: 0.0,
            image: "/img".into(),
            mode: Mode::Command("sleep 1".into()),
            env: vec!["A=1".into()],
            health: None,
        }
    }

    #[test]
    fn the_spec_has_what_the_task_needs() {
        let p = plan();
        let s = spec_with(
            &BundleInputs {
                plan: &p,
                init: Path::new("/usr/bin/berth-init"),
                run_dir: Path::new("/run/berth/tasks/x"),
                sandbox: Path::new("/sb"),
                cgroup_parent: "berth",
                netns: None,
                binds: &[],
            },
            &Hardening::default(),
        )
        .unwrap();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["hostname"], "web");
        assert_eq!(v["process"]["args"][0], INIT_PATH);
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/berth-web.1");
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 * 1024 * 1024);
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        for t in ["pid", "network", "ipc", "uts", "mount"] {
            assert!(ns.contains(&t), "{t}");
        }
        let mounts = v["mounts"].as_array().unwrap();
        let init = mounts
            .iter()
            .find(|m| m["destination"] == INIT_PATH)
            .unwrap();
        assert!(init["options"].as_array().unwrap().contains(&json!("ro")));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/run/berth" && m["source"] == "/run/berth/tasks/x"));
        let caps = v["process"]["capabilities"]["bounding"].as_array().unwrap();
        assert!(!caps.contains(&json!("CAP_NET_RAW")) && !caps.contains(&json!("CAP_SYS_ADMIN")));
    }

    #[test]
    fn a_prepared_netns_is_joined() {
        let p = plan();
        let s = spec_with(
            &BundleInputs {
                plan: &p,
                init: Path::new("/i"),
                run_dir: Path::new("/r"),
                sandbox: Path::new("/sb"),
                cgroup_parent: "berth",
                netns: Some(Path::new("/run/netns/x")),
                binds: &[],
            },
            &Hardening::default(),
        )
        .unwrap();
        let v = serde_json::to_value(&s).unwrap();
        let net = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap()
            .clone();
        assert_eq!(net["path"], "/run/netns/x");
        assert!(v["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_NET_ADMIN")));
    }

    fn hardened(h: &Hardening, netns: Option<&Path>) -> Value {
        let p = plan();
        let s = spec_with(
            &BundleInputs {
                plan: &p,
                init: Path::new("/i"),
                run_dir: Path::new("/r"),
                sandbox: Path::new("/sb"),
                cgroup_parent: "berth",
                netns,
                binds: &[],
            },
            h,
        )
        .unwrap();
        serde_json::to_value(&s).unwrap()
    }

    #[test]
    fn the_spec_is_hardened() {
        let v = hardened(&Hardening::default(), None);
        let l = &v["linux"];
        // A cgroup namespace.
        assert!(l["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "cgroup" && n["path"].is_null()));
        // The default seccomp profile.
        assert_eq!(l["seccomp"], seccomp::default_profile());
        // Docker's masked and read-only paths, powercap and interrupts included.
        let masked = l["maskedPaths"].as_array().unwrap();
        for m in [
            "/sys/devices/virtual/powercap",
            "/proc/interrupts",
            "/proc/kcore",
            "/proc/keys",
            "/proc/timer_list",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
            "/proc/acpi",
        ] {
            assert!(masked.contains(&json!(m)), "{m} not masked");
        }
        let ro = l["readonlyPaths"].as_array().unwrap();
        for r in [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ] {
            assert!(ro.contains(&json!(r)), "{r} not read-only");
        }
        // memory+swap = memory: no swap beyond the limit.
        assert_eq!(l["resources"]["memory"]["swap"], 64 * 1024 * 1024);
        assert_eq!(l["resources"]["pids"]["limit"], 4096);
        // Explicit rlimits.
        let rl = v["process"]["rlimits"].as_array().unwrap();
        let get = |t: &str| rl.iter().find(|r| r["type"] == t).cloned().unwrap();
        assert_eq!(get("RLIMIT_NOFILE")["soft"], 65536);
        assert_eq!(get("RLIMIT_NOFILE")["hard"], 65536);
        assert_eq!(get("RLIMIT_CORE")["soft"], 0);
        assert_eq!(get("RLIMIT_CORE")["hard"], 0);
        // Setuid programs keep working (documented choice).
        assert_eq!(v["process"]["noNewPrivileges"], false);
        // Least capabilities: no SYS_ADMIN, no NET_* without networking.
        for set in ["bounding", "effective", "permitted"] {
            let caps = v["process"]["capabilities"][set].as_array().unwrap();
            for c in [
                "CAP_SYS_ADMIN",
                "CAP_NET_RAW",
                "CAP_NET_ADMIN",
                "CAP_SYS_PTRACE",
                "CAP_MKNOD",
            ] {
                assert!(!caps.contains(&json!(c)), "{set} has {c}");
            }
        }
        // Devices: deny all.
        assert_eq!(l["resources"]["devices"][0]["allow"], false);
    }

    #[test]
    fn the_settings_change_the_hardening() {
        let h = Hardening {
            seccomp: seccomp::Seccomp::Unconfined,
            nofile: (1024, 4096),
            core: (0, u64::MAX),
            no_swap: false,
            swap_accounting: true,
        };
        let v = hardened(&h, None);
        assert!(v["linux"]["seccomp"].is_null());
        assert!(v["linux"]["resources"]["memory"]["swap"].is_null());
        let rl = v["process"]["rlimits"].as_array().unwrap();
        assert!(rl.contains(&json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096})));
        // Without swap accounting the runtime would refuse a swap limit: none is set.
        let h = Hardening {
            swap_accounting: false,
            ..Hardening::default()
        };
        let v = hardened(&h, None);
        assert_eq!(v["linux"]["resources"]["memory"]["limit"], 64 * 1024 * 1024);
        assert!(v["linux"]["resources"]["memory"]["swap"].is_null());
        // A profile file that does not parse fails the bundle, naming the setting.
        let p = plan();
        let e = spec_with(
            &BundleInputs {
                plan: &p,
                init: Path::new("/i"),
                run_dir: Path::new("/r"),
                sandbox: Path::new("/sb"),
                cgroup_parent: "berth",
                netns: None,
                binds: &[],
            },
            &Hardening {
                seccomp: seccomp::Seccomp::File("/nonexistent/seccomp.json".into()),
                ..Hardening::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains(seccomp::SETTING), "{e}");
    }

    #[test]
    fn a_health_check_gets_the_services_capabilities() {
        let v = hardened(&Hardening::default(), Some(Path::new("/run/netns/x")));
        let caps = &v["process"]["capabilities"]["effective"];
        assert!(caps.as_array().unwrap().contains(&json!("CAP_NET_RAW")));
        let p = check_process(&v["process"], &["/.berth/init", "--", "true"]);
        assert_eq!(p["args"], json!(["/.berth/init", "--", "true"]));
        for set in ["bounding", "effective", "permitted"] {
            let caps = p["capabilities"][set].as_array().unwrap();
            assert!(
                !caps.contains(&json!("CAP_NET_ADMIN")) && !caps.contains(&json!("CAP_NET_RAW")),
                "{set}: {caps:?}"
            );
            assert!(caps.contains(&json!("CAP_KILL")), "{set}");
        }
        // The rest is the container's: env, cwd, rlimits.
        assert_eq!(p["env"], v["process"]["env"]);
        assert_eq!(p["cwd"], v["process"]["cwd"]);
        assert_eq!(p["rlimits"], v["process"]["rlimits"]);
    }
}
