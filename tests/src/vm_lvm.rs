//! The VM tier's LVM: a volume group on a sparse loop file with a thin pool, in the VM's
//! tmpfs scratch (scripts/vm-tier.sh), removed with everything on it on drop.

use std::path::PathBuf;
use std::process::Command;

/// Saves seconds per lvm call under emulation (no dmeventd monitoring).
pub const FAST_CONFIG: &str = "activation{monitoring=0}";

/// Root, the VM, and temp dirs on the VM's tmpfs scratch.
pub fn vm_only() {
    crate::lab::require_root();
    assert_eq!(
        std::env::var("BERTH_VM_TIER").as_deref(),
        Ok("1"),
        "vm_* tests need device-mapper and 8021q: run them with scripts/vm-tier.sh"
    );
    let scratch = std::env::var("BERTH_VM_SCRATCH").expect("BERTH_VM_SCRATCH");
    std::env::set_var("TMPDIR", scratch);
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A VG `bvga<pid>` on a sparse loop file with a thin pool `pool`; on drop every LV, mount
/// under its dir and its loop device go.
pub struct Vg {
    pub dir: tempfile::TempDir,
    pub name: String,
}

impl Vg {
    pub fn new(tag: &str, pv_mib: u64, pool_mib: u64) -> Vg {
        let dir = tempfile::Builder::new()
            .prefix("berth-vm-agent-")
            .tempdir()
            .expect("tempdir");
        let vg = Vg {
            name: format!("bvga{tag}{}", std::process::id()),
            dir,
        };
        let pv = vg.dir.path().join("pv0");
        sh(&format!("truncate -s {pv_mib}M {}", pv.display()));
        let dev = sh(&format!("losetup -f --show {}", pv.display()));
        sh(&format!("lvm vgcreate -q {} {dev}", vg.name));
        sh(&format!(
            "lvm lvcreate -q -y --config '{FAST_CONFIG}' --type thin-pool --monitor n -L {pool_mib}m -n pool {vg} && lvm lvchange -q --errorwhenfull y {vg}/pool",
            vg = vg.name
        ));
        vg
    }

    /// The executor's (and the agent's) berth-lvm config file.
    pub fn config(&self, thin_home: bool) -> PathBuf {
        let p = self.dir.path().join(format!(
            "lvm-{}.json",
            if thin_home { "thin" } else { "linear" }
        ));
        let mut c = serde_json::json!({
            "vg": self.name,
            "lock_dir": self.dir.path().join("locks"),
            "lvm_config": FAST_CONFIG,
            "free_floor_percent": 10.0,
        });
        if thin_home {
            c["thin_pool"] = "pool".into();
            c["home_layout"] = "thin".into();
        }
        std::fs::write(&p, c.to_string()).expect("lvm config");
        p
    }

    /// berth's LVs: (name, owner tag).
    pub fn berth_lvs(&self) -> Vec<(String, String)> {
        sh(&format!(
            "lvm lvs --noheadings -o lv_name,lv_tags {}",
            self.name
        ))
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_string();
            let tags = w.next().unwrap_or_default();
            let owner = tags
                .split(',')
                .find_map(|t| t.strip_prefix("berth.owner="))
                .unwrap_or_default()
                .to_string();
            name.starts_with("berth-").then_some((name, owner))
        })
        .collect()
    }

    /// `lvm <report> --units b` numbers.
    pub fn bytes(&self, report: &str, fields: &str, what: &str) -> Vec<f64> {
        sh(&format!(
            "lvm {report} --noheadings --units b --nosuffix -o {fields} {what}"
        ))
        .split_whitespace()
        .map(|v| v.parse().expect("a number"))
        .collect()
    }
}

impl Drop for Vg {
    fn drop(&mut self) {
        let root = self.dir.path().display().to_string();
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut mounts: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = Command::new("lvm")
            .args(["vgremove", "-qq", "-ff", "-y", &self.name])
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .status();
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!("losetup -j {root}/pv0 -O NAME -n | xargs -r -n1 losetup -d"),
            ])
            .status();
    }
}
