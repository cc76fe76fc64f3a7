//! The containers' seccomp profile (`linux.seccomp` of the bundle).
//!
//! `BERTH_EXECUTOR_SECCOMP` chooses it: `default` (the profile below), `unconfined`
//! (none), or a path to a JSON file holding an OCI `LinuxSeccomp` object (as Docker's
//! `--security-opt seccomp=<file>` takes, in the OCI form), checked when the bundle is
//! written: a file that does not parse fails the task naming the setting.
//!
//! # Why a denylist
//! The default profile allows every syscall (`SCMP_ACT_ALLOW`) except a list that
//! returns `EPERM`, where Docker's and containerd's profiles are allowlists. Reasons:
//! - the capability set (Docker's less NET_RAW, no CAP_SYS_ADMIN) already stops most
//!   privileged syscalls; what is left reachable without capabilities is a short, known
//!   list: new user namespaces (which give back every capability inside them), keyrings,
//!   unprivileged BPF, perf events, userfaultfd, io_uring, `open_by_handle_at`
//!   (the "shocker" escape, with CAP_DAC_READ_SEARCH) — denied here whatever the caps;
//! - cap-gated syscalls (module loading, kexec, mount, swap, reboot, clock setting,
//!   syslog, quotas, raw I/O ports) are denied too, as a second wall;
//! - an allowlist must follow every new syscall and every libc's use of it (a missing
//!   entry breaks an app with a confusing error); berth runs arbitrary Marathon apps.
//!
//! The cost: a syscall added by a future kernel is allowed until listed here; list it, or
//! point the setting at an allowlist file (Docker's profile converted to the OCI form).
//!
//! Arguments are filtered where the syscall itself is fine: `clone` and `unshare` are
//! refused any namespace flag (CLONE_NEW*); `clone3` (whose flags sit behind a pointer a
//! filter cannot read) returns `ENOSYS`, so glibc falls back to `clone`; `personality`
//! is refused the flags that weaken ASLR or make data executable. `ptrace` stays allowed
//! (as in Docker on kernels >= 4.8, where it no longer bypasses seccomp): a task can
//! debug its own processes only, CAP_SYS_PTRACE being dropped.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The setting's name (in errors and the README).
pub const SETTING: &str = "BERTH_EXECUTOR_SECCOMP";

const EPERM: i64 = 1;
const ENOSYS: i64 = 38;

/// What `BERTH_EXECUTOR_SECCOMP` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Seccomp {
    /// berth's profile ([`default_profile`]).
    #[default]
    Default,
    /// No seccomp filter.
    Unconfined,
    /// An operator's `LinuxSeccomp` JSON file.
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("{SETTING}: cannot read the profile {path}")]
    Read {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{SETTING}: the profile {path} is not an OCI LinuxSeccomp object")]
    Parse {
        path: PathBuf,
        #[source]
        err: serde_json::Error,
    },
}

impl Seccomp {
    /// Parses the setting's value (empty = `default`).
    pub fn parse(v: &str) -> Seccomp {
        match v.trim() {
            "" | "default" => Seccomp::Default,
            "unconfined" => Seccomp::Unconfined,
            p => Seccomp::File(PathBuf::from(p)),
        }
    }

    /// The `linux.seccomp` value, `None` when unconfined.
    pub fn profile(&self) -> Result<Option<Value>, SeccompError> {
        match self {
            Seccomp::Default => Ok(Some(default_profile())),
            Seccomp::Unconfined => Ok(None),
            Seccomp::File(p) => load(p).map(Some),
        }
    }
}

/// Reads and checks an operator's profile.
fn load(path: &Path) -> Result<Value, SeccompError> {
    let text = std::fs::read_to_string(path).map_err(|err| SeccompError::Read {
        path: path.to_path_buf(),
        err,
    })?;
    let parsed: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_str(&text).map_err(|err| SeccompError::Parse {
            path: path.to_path_buf(),
            err,
        })?;
    serde_json::to_value(parsed).map_err(|err| SeccompError::Parse {
        path: path.to_path_buf(),
        err,
    })
}

/// The native architecture and the ones its kernel also runs (each needs the filter,
/// or a 32-bit binary would get past it).
fn architectures() -> Vec<&'static str> {
    if cfg!(target_arch = "x86_64") {
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else {
        vec![]
    }
}

/// Syscalls refused with EPERM whatever their arguments.
pub const DENIED: &[&str] = &[
    // Namespaces: joining one (berth-init never does), new mounts.
    "setns",
    "mount",
    "mount_setattr",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    // Kernel keyrings (not namespaced).
    "keyctl",
    "add_key",
    "request_key",
    // BPF, perf, userfaultfd, io_uring: large kernel attack surface.
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    // Kernel code and the machine.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    "syslog",
    "lookup_dcookie",
    "nfsservctl",
    "_sysctl",
    "uselib",
    "ustat",
    "sysfs",
    "vm86",
    "vm86old",
    "iopl",
    "ioperm",
    "fanotify_init",
    // File handles bypass the mount namespace ("shocker").
    "open_by_handle_at",
    "name_to_handle_at",
    // The clocks (reading them, and adjtimex's read mode, stay allowed).
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "clock_adjtime",
    "clock_adjtime64",
];

/// CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET.
pub const NAMESPACE_FLAGS: &[u64] = &[
    0x0002_0000,
    0x0200_0000,
    0x0400_0000,
    0x0800_0000,
    0x1000_0000,
    0x2000_0000,
    0x4000_0000,
];

/// personality(2) flags refused: ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT,
/// READ_IMPLIES_EXEC. PER_LINUX32 and UNAME26 stay allowed (as in Docker).
pub const PERSONALITY_FLAGS: &[u64] = &[0x0004_0000, 0x0010_0000, 0x0020_0000, 0x0040_0000];

/// One rule per flag: refused when `arg0 & flag == flag` (the rules of one syscall are
/// OR'ed, the args of one rule AND'ed).
fn flag_rules(names: &[&str], flags: &[u64]) -> Vec<Value> {
    flags
        .iter()
        .map(|f| {
            json!({
                "names": names,
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": EPERM,
                "args": [{"index": 0, "value": f, "valueTwo": f, "op": "SCMP_CMP_MASKED_EQ"}],
            })
        })
        .collect()
}

/// berth's default profile (see the module doc).
pub fn default_profile() -> Value {
    let mut rules = vec![
        json!({"names": DENIED, "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}),
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
    ];
    rules.extend(flag_rules(&["clone", "unshare"], NAMESPACE_FLAGS));
    rules.extend(flag_rules(&["personality"], PERSONALITY_FLAGS));
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_parses() {
        assert_eq!(Seccomp::parse(""), Seccomp::Default);
        assert_eq!(Seccomp::parse("default"), Seccomp::Default);
        assert_eq!(Seccomp::parse("unconfined"), Seccomp::Unconfined);
        assert_eq!(
            Seccomp::parse("/etc/berth/seccomp.json"),
            Seccomp::File("/etc/berth/seccomp.json".into())
        );
        assert!(Seccomp::Unconfined.profile().unwrap().is_none());
    }

    #[test]
    fn the_default_profile_is_a_valid_oci_object_denying_the_list() {
        let v = default_profile();
        let typed: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            serde_json::to_value(typed).unwrap()["defaultAction"],
            "SCMP_ACT_ALLOW"
        );
        let rules = v["syscalls"].as_array().unwrap();
        let denied_plain: Vec<&str> = rules
            .iter()
            .filter(|r| r["args"].is_null() && r["errnoRet"] == EPERM)
            .flat_map(|r| r["names"].as_array().unwrap())
            .map(|n| n.as_str().unwrap())
            .collect();
        for s in [
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "open_by_handle_at",
            "name_to_handle_at",
            "iopl",
            "ioperm",
            "swapon",
            "swapoff",
            "reboot",
            "acct",
            "quotactl",
            "settimeofday",
            "clock_settime",
            "syslog",
            "lookup_dcookie",
            "mount",
            "umount2",
            "pivot_root",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
        ] {
            assert!(denied_plain.contains(&s), "{s} not denied");
        }
        for allowed in ["ptrace", "clone", "unshare", "personality", "adjtimex"] {
            assert!(
                !denied_plain.contains(&allowed),
                "{allowed} denied outright"
            );
        }
        let clone3 = rules.iter().find(|r| r["names"][0] == "clone3").unwrap();
        assert_eq!(clone3["errnoRet"], ENOSYS);
        // CLONE_NEWUSER on both clone and unshare, as a masked-equal test of arg 0.
        assert!(rules
            .iter()
            .any(|r| r["names"] == json!(["clone", "unshare"])
                && r["args"][0]["value"] == 0x1000_0000u64
                && r["args"][0]["valueTwo"] == 0x1000_0000u64
                && r["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"));
        assert!(rules.iter().any(
            |r| r["names"] == json!(["personality"]) && r["args"][0]["value"] == 0x0040_0000u64
        ));
        let arches = v["architectures"].as_array().unwrap();
        if cfg!(target_arch = "x86_64") {
            for a in ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"] {
                assert!(arches.contains(&json!(a)), "{a}");
            }
        }
    }

    #[test]
    fn an_operator_file_is_loaded_or_refused_naming_the_setting() {
        let t = tempfile::tempdir().unwrap();
        let good = t.path().join("p.json");
        std::fs::write(
            &good,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        let v = Seccomp::File(good).profile().unwrap().unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        let bad = t.path().join("bad.json");
        std::fs::write(&bad, r#"{"defaultAction":"NOPE"}"#).unwrap();
        let e = Seccomp::File(bad).profile().unwrap_err().to_string();
        assert!(e.contains(SETTING) && e.contains("bad.json"), "{e}");
        let e = Seccomp::File(t.path().join("none.json"))
            .profile()
            .unwrap_err()
            .to_string();
        assert!(e.contains(SETTING), "{e}");
    }
}
