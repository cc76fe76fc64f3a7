//! VM tier: the executor's `volume` step on the `lvm` backend for real (device-mapper), inside
//! the VM scripts/vm-tier.sh boots. A volume group on a loop file in scratch space is made
//! and removed (with every LV, mount and loop device) by the test's guard. No runc here: the
//! step's run and undo are driven through `steps::prepare` / `steps::undo_steps`, as the
//! runner drives them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use berth_executor::task::config::RunConfig;
use berth_executor::task::plan::{Mode, Plan};
use berth_executor::task::steps::{self, Checkpoint, Outputs, Phase, Step, StepCtx};
use berth_executor::task::volume::{HomeVolume, VolumeConfig};

/// Saves seconds per lvm call under emulation (no dmeventd monitoring).
const FAST_CONFIG: &str = "activation{monitoring=0}";

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn mountinfo_targets() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// A VG `bvgv<pid>` on a loop file; removes everything on drop.
struct Vg {
    dir: tempfile::TempDir,
    name: String,
}

impl Vg {
    fn new() -> Vg {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "vm_volume needs root");
        assert_eq!(
            std::env::var("BERTH_VM_TIER").as_deref(),
            Ok("1"),
            "vm_* tests need device-mapper: run them with scripts/vm-tier.sh"
        );
        let base = std::env::var("BERTH_VM_SCRATCH")
            .or_else(|_| std::env::var("BERTH_VM_WORK"))
            .expect("BERTH_VM_WORK");
        let dir = tempfile::Builder::new()
            .prefix("berth-exec-vol-")
            .tempdir_in(base)
            .unwrap();
        let vg = Vg {
            name: format!("bvgv{}", std::process::id()),
            dir,
        };
        let pv = vg.dir.path().join("pv0");
        sh(&format!("truncate -s 256M {}", pv.display()));
        let dev = sh(&format!("losetup -f --show {}", pv.display()));
        sh(&format!("lvm vgcreate -q {} {dev}", vg.name));
        vg
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lvs(&self) -> String {
        sh(&format!(
            "lvm lvs --noheadings -o lv_name,lv_tags,lv_size --units m {}",
            self.name
        ))
    }
}

impl Drop for Vg {
    fn drop(&mut self) {
        let root = self.path().display().to_string();
        let mut mounts: Vec<String> = mountinfo_targets()
            .into_iter()
            .filter(|m| m.starts_with(&root))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
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

fn ctx(vg: &Vg, task_id: &str, home_mb: f64, retain: Option<&str>) -> StepCtx {
    let cfg_file = vg.path().join("lvm.json");
    std::fs::write(
        &cfg_file,
        serde_json::json!({
            "vg": vg.name,
            "lock_dir": vg.path().join("locks"),
            "lvm_config": FAST_CONFIG,
        })
        .to_string(),
    )
    .unwrap();
    StepCtx {
        plan: Plan {
            task_id: task_id.into(),
            container_id: format!("berth-{task_id}"),
            hostname: "vm".into(),
            cpus: 0.0,
            mem_mb: 0.0,
            disk_mb: 0.0,
            ports: vec![],
            home_mb,
            bandwidth_mbit: 0.0,
            image: "/".into(),
            mode: Mode::Command("true".into()),
            env: vec![],
            health: None,
        },
        cfg: RunConfig {
            state_dir: vg.path().join("state"),
            run_dir: vg.path().join("run"),
            volume: VolumeConfig {
                backend: Some("lvm".into()),
                lvm_config: cfg_file,
                retain: retain.map(str::to_string),
                ..VolumeConfig::default()
            },
            ..RunConfig::default()
        },
        sandbox: vg.path().into(),
        outputs: Mutex::new(Outputs::default()),
    }
}

fn step(c: &StepCtx) -> Vec<Box<dyn Step>> {
    let v = HomeVolume::from_settings(&c.plan.task_id, c.plan.home_mb, &c.cfg.volume)
        .unwrap()
        .expect("a volume step");
    vec![Box::new(v)]
}

fn mount_point(c: &StepCtx) -> PathBuf {
    HomeVolume::mount_point(c)
}

#[test]
fn vm_volume_step_on_lvm() {
    let vg = Vg::new();

    // Run: a linear LV of the asked size, owner-tagged, ext4, mounted nosuid,nodev under the
    // state dir and handed to the bundle as /home.
    let c = ctx(&vg, "web.vm-1", 64.0, None);
    let steps_ = step(&c);
    steps::prepare(&steps_, &c).unwrap();
    let mp = mount_point(&c);
    let lvs = vg.lvs();
    assert!(
        lvs.contains("berth-home-web-vm-1-") && lvs.contains("berth.owner=web.vm-1"),
        "{lvs}"
    );
    // 64 MB usable: the LV carries ext4's overhead on top, in whole 4 MiB extents.
    let lv = berth_lvm::Filesystem::Ext4
        .device_size(berth_lvm::Bytes::mib(64))
        .round_up(4 << 20);
    let want = format!("{:.2}m", lv.0 as f64 / 1048576.0);
    assert!(lvs.contains(&want), "{want} in {lvs}");
    let line = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&*mp.display().to_string()))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{} is not mounted", mp.display()));
    assert!(line.contains(" ext4 "), "{line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    assert_eq!(
        c.outputs().binds,
        vec![(mp.clone(), "/home".to_string(), false)]
    );
    let st = nix::sys::statvfs::statvfs(&mp).unwrap();
    let usable = st.blocks_available() * st.fragment_size();
    assert!(usable >= 64 << 20, "64 MB asked, {usable} bytes usable");
    std::fs::write(mp.join("f"), b"data").unwrap();

    // Teardown: unmounted, LV removed, mount point and state dir gone; again is a no-op.
    assert!(steps::undo_steps(&steps_, &c).is_empty());
    assert!(!mountinfo_targets().contains(&mp.display().to_string()));
    assert!(!vg.lvs().contains("berth-home"), "{}", vg.lvs());
    assert!(!c.state_dir().exists());
    assert!(steps::undo_steps(&steps_, &c).is_empty());

    // Retention `always`, container started: unmounted and kept; then a failed launch of
    // another task with `always` is removed all the same.
    let c = ctx(&vg, "web.vm-2", 32.0, Some("always"));
    let steps_ = step(&c);
    steps::prepare(&steps_, &c).unwrap();
    let mut cp = Checkpoint::load(&c.state_dir()).unwrap();
    cp.steps.push(("container".into(), Phase::Done));
    cp.save(&c.state_dir()).unwrap();
    assert!(steps::undo_steps(&steps_, &c).is_empty());
    let lvs = vg.lvs();
    assert!(lvs.contains("berth.owner=web.vm-2"), "kept: {lvs}");
    assert!(!mountinfo_targets().contains(&mount_point(&c).display().to_string()));
    let backend = berth_lvm::lvm::LvmBackend::new({
        let mut l = berth_lvm::lvm::LvmConfig::new(&vg.name);
        l.lock_dir = vg.path().join("locks");
        l.lvm_config = Some(FAST_CONFIG.into());
        l
    })
    .unwrap();
    let name = berth_lvm::VolumeName::for_task(berth_lvm::VolumeKind::Home, "web.vm-2").unwrap();
    assert!(berth_lvm::Backend::remove(&backend, &name).unwrap());

    let mut c = ctx(&vg, "web.vm-3", 32.0, Some("always"));
    c.cfg.fail_step = Some("volume".into());
    let steps_ = step(&c);
    let errs = steps::prepare(&steps_, &c).unwrap_err();
    assert!(errs[0].to_string().contains("injected"), "{errs:?}");
    assert_eq!(errs.len(), 1, "undo failed: {errs:?}");
    assert!(!vg.lvs().contains("berth-home"), "{}", vg.lvs());

    // Too big for the VG (the free-space floor): a clear error, nothing left.
    let c = ctx(&vg, "web.vm-4", 1024.0, None);
    let steps_ = step(&c);
    let errs = steps::prepare(&steps_, &c).unwrap_err();
    let e = errs[0].to_string();
    assert!(
        e.starts_with("volume: creating berth-home-web-vm-4-"),
        "{e}"
    );
    assert_eq!(errs.len(), 1, "undo failed: {errs:?}");
    assert!(!vg.lvs().contains("berth-home"), "{}", vg.lvs());
    assert!(!c.state_dir().exists());
}
