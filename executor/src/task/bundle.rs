//! The OCI bundle: `config.json` for runc, typed with the `oci-spec` crate.
//!
//! Namespaces pid, mount, uts, ipc and network (a prepared netns path when networking is
//! configured, else a new empty one with only loopback); cgroup CPU and memory limits from
//! the resources; the hostname; berth-init bind-mounted read-only from the host as the
//! process; the task's run dir at `/run/berth`; the Mesos sandbox; least capabilities.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::plan::{Plan, INIT_PATH, SANDBOX};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the generated OCI spec does not parse")]
    Spec(#[from] serde_json::Error),
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

/// Builds the spec (pure: no I/O), so it can be checked field by field in unit tests.
pub fn spec(i: &BundleInputs<'_>) -> Result<Spec, BundleError> {
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
        resources["memory"] = json!({"limit": (p.mem_mb * 1024.0 * 1024.0) as i64});
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
    let doc = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": p.args(),
            "env": p.env,
            "cwd": p.cwd(),
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            // Images may rely on setuid programs (su, sudo for operator logins).
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": p.hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": format!("/{}/{}", i.cgroup_parent, p.container_id),
            "resources": resources,
            "namespaces": [{"type": "pid"}, net, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    });
    Ok(serde_json::from_value(doc)?)
}

/// Writes `config.json` into the bundle directory.
pub fn write(bundle: &Path, spec: &Spec) -> Result<(), BundleError> {
    let path = bundle.join("config.json");
    spec.save(&path)
        .map_err(|err| BundleError::Write { path, err })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::plan::Mode;

    fn plan() -> Plan {
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
        let s = spec(&BundleInputs {
            plan: &p,
            init: Path::new("/usr/bin/berth-init"),
            run_dir: Path::new("/run/berth/tasks/x"),
            sandbox: Path::new("/sb"),
            cgroup_parent: "berth",
            netns: None,
            binds: &[],
        })
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
        let s = spec(&BundleInputs {
            plan: &p,
            init: Path::new("/i"),
            run_dir: Path::new("/r"),
            sandbox: Path::new("/sb"),
            cgroup_parent: "berth",
            netns: Some(Path::new("/run/netns/x")),
            binds: &[],
        })
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
}
