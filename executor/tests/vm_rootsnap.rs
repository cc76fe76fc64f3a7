//! VM tier: thin root snapshots (`BERTH_EXECUTOR_VOLUME_ROOT=snapshot`) for real
//! (device-mapper thin), inside the VM scripts/vm-tier.sh boots: an image's base is filled
//! once even when two tasks of it start at once, each task's root is a writable snapshot of
//! it mounted on the bundle's `rootfs` (grown to the task's `disk`), the `rootfs` step's undo
//! removes the snapshot and keeps the base, which GC's image listing shows. A VG with a thin
//! pool on a loop file is made and removed by the test's guard. No runc: the step runs through
//! `steps::prepare` / `steps::undo_steps`, as the runner drives it.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use berth_executor::image::digest::Digest;
use berth_executor::image::layout::Descriptor;
use berth_executor::image::{ImageSource, Resolved};
use berth_executor::task::builtin::Rootfs;
use berth_executor::task::config::RunConfig;
use berth_executor::task::plan::{Mode, Plan};
use berth_executor::task::steps::{self, Outputs, Step, StepCtx};
use berth_executor::task::volume::VolumeConfig;
use berth_lvm::lvm::image::{image_volume_name, ImageSpec};
use berth_lvm::lvm::{LvmBackend, LvmConfig};
use berth_lvm::{Backend, Bytes, Filesystem, Owner, VolumeKind, VolumeName, VolumeState};

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

fn mountinfo_line(target: &Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(&*target.display().to_string()))
        .map(str::to_string)
}

/// A VG `bvgr<pid>` with a thin pool on a loop file; removes everything on drop.
struct Vg {
    dir: tempfile::TempDir,
    name: String,
}

impl Vg {
    fn new() -> Vg {
        // SAFETY: geteuid has no preconditions and cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "vm_rootsnap needs root");
        assert_eq!(
            std::env::var("BERTH_VM_TIER").as_deref(),
            Ok("1"),
            "vm_* tests need device-mapper: run them with scripts/vm-tier.sh"
        );
        let base = std::env::var("BERTH_VM_SCRATCH")
            .or_else(|_| std::env::var("BERTH_VM_WORK"))
            .expect("BERTH_VM_WORK");
        let dir = tempfile::Builder::new()
            .prefix("berth-exec-root-")
            .tempdir_in(base)
            .unwrap();
        let vg = Vg {
            name: format!("bvgr{}", std::process::id()),
            dir,
        };
        let pv = vg.dir.path().join("pv0");
        sh(&format!("truncate -s 400M {}", pv.display()));
        let dev = sh(&format!("losetup -f --show {}", pv.display()));
        sh(&format!("lvm vgcreate -q {} {dev}", vg.name));
        sh(&format!(
            "lvm lvcreate -q -y --type thin-pool -L 300m -n pool {}",
            vg.name
        ));
        vg
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn lvs(&self) -> String {
        sh(&format!(
            "lvm lvs --noheadings -o lv_name,lv_tags,origin --units m {}",
            self.name
        ))
    }

    fn config(&self) -> LvmConfig {
        let mut l = LvmConfig::new(&self.name);
        l.thin_pool = Some("pool".into());
        l.lock_dir = self.path().join("locks");
        l.lvm_config = Some(FAST_CONFIG.into());
        l.free_floor_percent = 1.0;
        l
    }
}

impl Drop for Vg {
    fn drop(&mut self) {
        let root = self.path().display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&root) || m.starts_with("/tmp/berth-image."))
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

/// An unpacked image (what the image cache holds): a few files, a symlink, 2 MiB of data.
fn image_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("usr/lib")).unwrap();
    std::fs::write(dir.join("etc/os-release"), b"ID=berth-snap\n").unwrap();
    std::fs::write(dir.join("usr/lib/blob"), vec![7u8; 2 << 20]).unwrap();
    std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
}

fn oci(rootfs: &Path, tag: &str) -> ImageSource {
    let digest = Digest::of(tag.as_bytes());
    ImageSource::Oci {
        image: Box::new(Resolved {
            layout: rootfs.into(),
            reference: format!("vm/{tag}:1"),
            manifest: Descriptor {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                digest: digest.clone(),
                size: 1,
                annotations: Default::default(),
                platform: None,
            },
            layers: vec![],
            config_digest: digest,
            diff_ids: vec![],
            architecture: "amd64".into(),
            os: "linux".into(),
            config: Default::default(),
        }),
        rootfs: rootfs.into(),
    }
}

fn ctx(vg: &Vg, task_id: &str, image: ImageSource, disk_mb: f64) -> StepCtx {
    let cfg_file = vg.path().join("lvm.json");
    std::fs::write(
        &cfg_file,
        serde_json::json!({
            "vg": vg.name,
            "thin_pool": "pool",
            "lock_dir": vg.path().join("locks"),
            "lvm_config": FAST_CONFIG,
            "free_floor_percent": 1.0,
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
            disk_mb,
            ports: vec![],
            home_mb: 0.0,
            bandwidth_mbit: 0.0,
            image,
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
                root: Some("snapshot".into()),
                ..VolumeConfig::default()
            },
            ..RunConfig::default()
        },
        sandbox: vg.path().into(),
        outputs: Mutex::new(Outputs::default()),
    }
}

fn fs_bytes(p: &Path) -> u64 {
    let st = nix::sys::statvfs::statvfs(p).unwrap();
    st.blocks() * st.fragment_size()
}

#[test]
fn vm_thin_root_snapshots() {
    let vg = Vg::new();
    let src = vg.path().join("cache-rootfs");
    image_tree(&src);

    // Two tasks of one image at once: one fills the base, the other waits for it.
    let fills = AtomicUsize::new(0);
    let fill = |dir: &Path| -> std::io::Result<()> {
        fills.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let st = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(dir)
            .status()?;
        assert!(st.success());
        Ok(())
    };
    let roots: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=2)
            .map(|i| {
                let (fill, cfg) = (&fill, vg.config());
                s.spawn(move || {
                    let spec = ImageSpec {
                        id: "sha256:concurrent",
                        size: Bytes::mib(32),
                        fs: Filesystem::Ext4,
                        fill,
                    };
                    let b = LvmBackend::new(cfg).unwrap();
                    let name = VolumeName::new(&format!("berth-root-c{i}")).unwrap();
                    let owner = Owner::new(&format!("c{i}")).unwrap();
                    b.image_root(&spec, &name, &owner, Bytes::mib(32), true)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(fills.load(Ordering::SeqCst), 1, "the image is filled once");
    let b = LvmBackend::new(vg.config()).unwrap();
    for r in roots {
        let r = r.unwrap();
        assert_eq!(
            (r.layout.as_str(), r.state),
            ("snapshot", VolumeState::Complete)
        );
        assert!(b.remove(&r.name).unwrap());
    }
    let lvs = vg.lvs();
    assert!(lvs.contains("berth.image"), "{lvs}");
    assert!(!lvs.contains("berth.incomplete"), "{lvs}");

    // The executor's rootfs step: a snapshot of the image's base, grown to `disk`, mounted on
    // the bundle's rootfs; a second task's root does not see the first one's writes.
    let img = oci(&src, "app");
    let a = ctx(&vg, "web.snap-1", img.clone(), 96.0);
    let c2 = ctx(&vg, "web.snap-2", img, 0.0);
    let steps_: Vec<Box<dyn Step>> = vec![Box::new(Rootfs)];
    steps::prepare(&steps_, &a).unwrap();
    let ra = a.bundle_dir().join("rootfs");
    let line = mountinfo_line(&ra).unwrap_or_else(|| panic!("{} not mounted", ra.display()));
    assert!(
        line.contains(" ext4 "),
        "a snapshot, not an overlay: {line}"
    );
    assert_eq!(
        std::fs::read(ra.join("etc/os-release")).unwrap(),
        b"ID=berth-snap\n"
    );
    assert!(ra.join("lib/blob").is_file(), "symlinks kept");
    assert!(
        fs_bytes(&ra) >= 90 << 20,
        "grown to disk: {}",
        fs_bytes(&ra)
    );
    std::fs::write(ra.join("etc/os-release"), b"changed").unwrap();

    // A leftover root of task 2's id is replaced, not reused.
    let name2 = VolumeName::for_task(VolumeKind::Root, "web.snap-2").unwrap();
    let stale = b
        .image_root(
            &ImageSpec {
                id: "sha256:concurrent",
                size: Bytes::mib(32),
                fs: Filesystem::Ext4,
                fill: &fill,
            },
            &name2,
            &Owner::new("web.snap-2").unwrap(),
            Bytes::mib(32),
            false,
        )
        .unwrap();
    assert_eq!(stale.layout, "snapshot");
    steps::prepare(&steps_, &c2).unwrap();
    let rb = c2.bundle_dir().join("rootfs");
    assert_eq!(
        std::fs::read(rb.join("etc/os-release")).unwrap(),
        b"ID=berth-snap\n",
        "roots are independent, and the leftover was replaced"
    );
    let lvs = vg.lvs();
    let base = image_volume_name(&oci_digest("app")).unwrap();
    assert_eq!(
        lvs.lines()
            .filter(|l| l.contains(&format!(" {base}")))
            .count(),
        2,
        "both roots are snapshots of the app's base: {lvs}"
    );
    let bases = lvs
        .lines()
        .filter(|l| l.trim_start().starts_with("berth-img-"))
        .count();
    assert_eq!(bases, 2, "one base per image: {lvs}");

    // Undo: unmounted, snapshots removed, bases kept and listed for GC.
    for c in [&a, &c2] {
        assert!(steps::undo_steps(&steps_, c).is_empty());
        assert!(mountinfo_line(&c.bundle_dir().join("rootfs")).is_none());
        assert!(steps::undo_steps(&steps_, c).is_empty(), "again: a no-op");
    }
    let lvs = vg.lvs();
    assert!(!lvs.contains("berth-root"), "{lvs}");
    let bases: Vec<String> = berth_lvm::gc::image_bases(&b)
        .unwrap()
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(bases.len(), 2, "{bases:?}");
    assert!(bases.contains(&base.to_string()), "{bases:?}");
    assert!(b
        .list()
        .unwrap()
        .iter()
        .all(|v| berth_lvm::gc::is_image_owner(&v.owner)));
}

fn oci_digest(tag: &str) -> String {
    Digest::of(tag.as_bytes()).as_str().to_string()
}
