//! VM tier: the `lvm` backend for real (device-mapper, dm-thin-pool), inside the VM that
//! scripts/vm-tier.sh boots. Each test makes its own volume group on loop files in scratch
//! space and removes it, with every LV, mount and loop device, on drop.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_lvm::gc;
use berth_lvm::lvm::{Layout, LvmBackend, LvmConfig};
use berth_lvm::{
    Backend, Bytes, CreateRequest, Filesystem, MountOptions, Owner, Resized, VolumeError,
    VolumeName, VolumeState,
};
use common::{assert_root, berth_vol, fs_size, stderr, stdout, unique, Scratch};

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

/// A volume group on loop files, with an optional thin pool named `pool`.
struct Lab {
    scratch: Scratch,
    vg: String,
    fast: bool,
}

const FAST_CONFIG: &str = "activation{monitoring=0}";

impl Lab {
    /// `fast`: no dmeventd monitoring of the pool (it costs seconds per thin call under
    /// emulation); one test keeps the production defaults. (Bypassing udev while udev runs,
    /// `no_udev`, races with udev over /dev nodes: that mode is only for hosts without udev.)
    fn new(pv_mib: u64, pool_mib: Option<u64>, fast: bool) -> Lab {
        assert_root();
        assert_eq!(
            std::env::var("BERTH_VM_TIER").as_deref(),
            Ok("1"),
            "vm_* tests need device-mapper: run them with scripts/vm-tier.sh"
        );
        let base = std::env::var("BERTH_VM_SCRATCH")
            .or_else(|_| std::env::var("BERTH_VM_WORK"))
            .expect("BERTH_VM_WORK");
        let scratch = Scratch::new(Path::new(&base));
        let vg = unique("bvg");
        let lab = Lab { scratch, vg, fast };
        let pv = lab.scratch.path().join("pv0");
        sh(&format!("truncate -s {pv_mib}M {}", pv.display()));
        let dev = sh(&format!("losetup -f --show {}", pv.display()));
        sh(&format!("lvm vgcreate -q {} {dev}", lab.vg));
        if let Some(p) = pool_mib {
            sh(&format!("lvm lvcreate -q -y --type thin-pool --monitor {m} -L {p}m -n pool {vg} && lvm lvchange -q --errorwhenfull y {vg}/pool", vg = lab.vg, m = if fast { "n" } else { "y" }));
        }
        lab
    }

    fn cfg(&self, layout: Layout, floor: f64) -> LvmConfig {
        let mut c = LvmConfig::new(&self.vg);
        c.thin_pool = Some("pool".into());
        c.home_layout = layout;
        c.free_floor_percent = floor;
        c.lock_dir = self.scratch.path().join("locks");
        c.timeout_secs = 120;
        if self.fast {
            c.lvm_config = Some(FAST_CONFIG.into());
        }
        c
    }

    fn backend(&self, layout: Layout, floor: f64) -> LvmBackend {
        LvmBackend::new(self.cfg(layout, floor)).unwrap()
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    /// `berth-vol` arguments for this lab.
    fn vol_args(&self, thin: bool, rest: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = [
            "--backend",
            "lvm",
            "--vg",
            &self.vg,
            "--thin-pool",
            "pool",
            "--lock-dir",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(self.dir("locks").display().to_string());
        if thin {
            v.push("--thin".into());
        }
        if self.fast {
            v.extend(["--lvm-config".to_string(), FAST_CONFIG.into()]);
        }
        v.extend(rest.iter().map(|s| s.to_string()));
        v
    }

    fn vol(&self, thin: bool, rest: &[&str], crash_at: Option<&str>) -> std::process::Output {
        let args = self.vol_args(thin, rest);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = crash_at
            .map(|c| vec![("BERTH_VOL_CRASH_AT", c)])
            .unwrap_or_default();
        berth_vol(&args, &env)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut mounts = self.scratch.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for m in mounts {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = Command::new("lvm")
            .args(["vgremove", "-qq", "-ff", "-y", &self.vg])
            .stdout(std::process::Stdio::null())
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .status();
        // Scratch's own drop detaches the loop devices.
    }
}

fn req(name: &str, size: &str, fs: Filesystem, owner: &str) -> CreateRequest {
    CreateRequest {
        name: VolumeName::new(name).unwrap(),
        size: size.parse().unwrap(),
        fs,
        owner: Owner::new(owner).unwrap(),
    }
}

/// The LV for `mib` MiB usable on ext4: the filesystem's overhead on top, whole 4 MiB
/// extents.
fn lv(mib: u64) -> Bytes {
    Filesystem::Ext4
        .device_size(Bytes::mib(mib))
        .round_up(4 << 20)
}

#[test]
fn vm_linear_and_thin_lifecycle() {
    let lab = Lab::new(1024, Some(512), false);
    let b = lab.backend(Layout::Linear, 5.0);
    assert!(b.health().unwrap().is_ok(), "{:?}", b.health().unwrap());

    // Linear ext4: create (idempotent), mount, grow online, shrink refused, remove.
    let r = req("berth-home-lin-1", "64M", Filesystem::Ext4, "task-1");
    let v = b.create(&r).unwrap();
    assert_eq!(
        (v.state, v.layout.as_str(), v.size),
        (VolumeState::Complete, "linear", lv(64))
    );
    assert_eq!(b.create(&r).unwrap(), v);
    let other = CreateRequest {
        owner: Owner::new("task-2").unwrap(),
        ..r.clone()
    };
    assert!(matches!(
        b.create(&other),
        Err(VolumeError::OwnedByOther { .. })
    ));
    let mnt = lab.dir("lin");
    b.mount(
        &r.name,
        &mnt,
        &MountOptions {
            read_only: false,
            extra: vec!["noatime".into()],
        },
    )
    .unwrap();
    std::fs::write(mnt.join("f"), b"data").unwrap();
    let before = fs_size(&mnt);
    assert_eq!(
        b.resize(&r.name, "130M".parse().unwrap()).unwrap(),
        Resized::Grown {
            from: lv(64),
            to: lv(130)
        }
    );
    assert!(
        fs_size(&mnt) > before + (60 << 20),
        "ext4 grew online: {before} -> {}",
        fs_size(&mnt)
    );
    assert_eq!(
        b.resize(&r.name, Bytes::mib(130)).unwrap(),
        Resized::Unchanged
    );
    let e = b.resize(&r.name, Bytes::mib(64)).unwrap_err();
    assert!(e.to_string().contains("grow only"), "{e}");
    assert!(matches!(
        b.remove(&r.name),
        Err(VolumeError::Mounted { .. })
    ));
    b.unmount(&mnt).unwrap();

    // Thin xfs from the pool, grown online.
    let tb = lab.backend(Layout::Thin, 5.0);
    let t = req("berth-home-thin-1", "320M", Filesystem::Xfs, "task-3");
    let tv = tb.create(&t).unwrap();
    assert_eq!(tv.layout, "thin");
    let tm = lab.dir("thin");
    tb.mount(&t.name, &tm, &MountOptions::default()).unwrap();
    let before = fs_size(&tm);
    assert!(matches!(
        tb.resize(&t.name, Bytes::mib(400)).unwrap(),
        Resized::Grown { .. }
    ));
    assert!(fs_size(&tm) > before + (60 << 20));
    tb.unmount(&tm).unwrap();

    // An LV berth did not make is neither listed nor removable; an inactive volume mounts.
    sh(&format!("lvm lvcreate -q -y -n foreign -L 8m {}", lab.vg));
    let names: Vec<String> = b
        .list()
        .unwrap()
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(names, ["berth-home-lin-1", "berth-home-thin-1"]);
    assert_eq!(b.list().unwrap()[1].owner.as_str(), "task-3");
    assert!(matches!(
        b.remove(&VolumeName::new("foreign").unwrap()),
        Err(VolumeError::NotOurs { .. })
    ));
    sh(&format!("lvm lvchange -q -an {}/berth-home-lin-1", lab.vg));
    b.mount(&r.name, &mnt, &MountOptions::default()).unwrap();
    assert_eq!(std::fs::read(mnt.join("f")).unwrap(), b"data");
    b.unmount(&mnt).unwrap();

    let cap = tb.capacity().unwrap();
    let thin = cap.thin.expect("thin usage");
    assert_eq!(thin.pool_size, Bytes::mib(512));
    assert!(
        thin.data_percent > 0.0 && thin.metadata_percent > 0.0,
        "{thin:?}"
    );
    assert!(cap.free < cap.total);

    assert!(b.remove(&r.name).unwrap());
    assert!(!b.remove(&r.name).unwrap());
    assert!(tb.remove(&t.name).unwrap());
    assert!(b.list().unwrap().is_empty());
}

#[test]
fn vm_snapshot_root_from_image_base() {
    let lab = Lab::new(1024, Some(512), true);
    let b = lab.backend(Layout::Thin, 5.0);
    let src = lab.dir("image-src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/os-release"), b"ID=berth-test\n").unwrap();
    let calls = std::cell::Cell::new(0);
    let fill = |dir: &Path| -> std::io::Result<()> {
        calls.set(calls.get() + 1);
        let st = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(dir)
            .status()?;
        assert!(st.success());
        Ok(())
    };
    let base = b
        .ensure_image("registry/app:1.0", Bytes::mib(64), Filesystem::Ext4, &fill)
        .unwrap();
    assert_eq!(
        (base.layout.as_str(), base.state),
        ("image", VolumeState::Complete)
    );
    assert_eq!(
        b.ensure_image("registry/app:1.0", Bytes::mib(64), Filesystem::Ext4, &fill)
            .unwrap(),
        base
    );
    assert_eq!(calls.get(), 1, "the image is filled once");
    let base_lv = b
        .vg()
        .unwrap()
        .lvs
        .into_iter()
        .find(|l| l.name == base.name.as_str())
        .unwrap();
    assert!(!base_lv.attr.writable, "image base is read-only");

    let root1 = VolumeName::new("berth-root-task-1").unwrap();
    let owner = Owner::new("task-1").unwrap();
    let v = b
        .snapshot_root(&root1, &owner, &base.name, Bytes::mib(256))
        .unwrap();
    assert_eq!(
        (v.layout.as_str(), v.size, v.state),
        ("snapshot", Bytes::mib(256), VolumeState::Complete)
    );
    assert_eq!(
        b.snapshot_root(&root1, &owner, &base.name, Bytes::mib(256))
            .unwrap(),
        v,
        "idempotent"
    );
    let root2 = VolumeName::new("berth-root-task-2").unwrap();
    b.snapshot_root(
        &root2,
        &Owner::new("task-2").unwrap(),
        &base.name,
        Bytes::mib(64),
    )
    .unwrap();

    // A root at the base's size from its marker: no report, one lvcreate, a working root.
    let spec = berth_lvm::lvm::image::ImageSpec {
        id: "registry/app:1.0",
        size: Bytes::mib(64),
        fs: Filesystem::Ext4,
        fill: &fill,
    };
    let root3 = VolumeName::new("berth-root-task-3").unwrap();
    let v3 = b
        .image_root(
            &spec,
            &root3,
            &Owner::new("task-3").unwrap(),
            Bytes::mib(16),
            true,
        )
        .unwrap();
    assert_eq!((v3.layout.as_str(), v3.size), ("snapshot", base.size));
    let m3 = lab.dir("r3");
    b.mount_new(&v3, &m3, &MountOptions::default()).unwrap();
    assert_eq!(
        std::fs::read(m3.join("etc/os-release")).unwrap(),
        b"ID=berth-test\n"
    );
    b.unmount(&m3).unwrap();
    assert!(b.remove(&root3).unwrap());
    assert_eq!(calls.get(), 1, "the marked base was not filled again");

    let m1 = lab.dir("r1");
    let m2 = lab.dir("r2");
    b.mount(&root1, &m1, &MountOptions::default()).unwrap();
    b.mount(&root2, &m2, &MountOptions::default()).unwrap();
    assert_eq!(
        std::fs::read(m1.join("etc/os-release")).unwrap(),
        b"ID=berth-test\n"
    );
    assert!(
        fs_size(&m1) > 200 << 20,
        "root grown to the task's size: {}",
        fs_size(&m1)
    );
    std::fs::write(m1.join("etc/os-release"), b"changed").unwrap();
    assert_eq!(
        std::fs::read(m2.join("etc/os-release")).unwrap(),
        b"ID=berth-test\n",
        "snapshots are independent"
    );
    b.unmount(&m1).unwrap();
    b.unmount(&m2).unwrap();
    for n in [&root1, &root2, &base.name] {
        assert!(b.remove(n).unwrap());
    }
    assert!(b.list().unwrap().is_empty());
}

#[test]
fn vm_full_pool_and_vg_are_refused_at_the_floor() {
    let lab = Lab::new(512, Some(64), true);
    let b = lab.backend(Layout::Thin, 50.0);
    let r = req("berth-home-fill", "200M", Filesystem::Ext4, "t");
    b.create(&r).unwrap();
    let m = lab.dir("fill");
    b.mount(&r.name, &m, &MountOptions::default()).unwrap();
    sh(&format!(
        "dd if=/dev/urandom of={}/blob bs=1M count=40 conv=fsync status=none",
        m.display()
    ));
    b.unmount(&m).unwrap();
    let thin = b.capacity().unwrap().thin.unwrap();
    assert!(thin.data_percent >= 50.0, "pool filled: {thin:?}");
    // device-mapper's status ioctl (a root's floor check without a report) agrees with lvm.
    let st = berth_lvm::dm::status(&berth_lvm::dm::lvm_name(&lab.vg, "pool", "tpool")).unwrap();
    let (data, meta) = berth_lvm::dm::thin_pool_percent(&st).expect(&st);
    assert!((data - thin.data_percent).abs() < 0.5, "{st} vs {thin:?}");
    assert!(
        (meta - thin.metadata_percent).abs() < 0.5,
        "{st} vs {thin:?}"
    );
    let e = b
        .create(&req("berth-home-next", "16M", Filesystem::Ext4, "t2"))
        .unwrap_err();
    assert!(matches!(e, VolumeError::BelowFloor { .. }), "{e}");
    assert!(e.to_string().contains("free-space floor is 50%"), "{e}");
    assert!(
        b.get(&VolumeName::new("berth-home-next").unwrap())
            .unwrap()
            .is_none(),
        "nothing was created"
    );
    let h = b.health().unwrap();
    assert!(
        !h.is_ok() && h.problems[0].contains("new volumes are refused"),
        "{h:?}"
    );

    // Linear: a volume that would leave less than the floor of the VG free is refused.
    let lb = lab.backend(Layout::Linear, 50.0);
    let e = lb
        .create(&req("berth-home-big", "300M", Filesystem::Ext4, "t3"))
        .unwrap_err();
    assert!(e.to_string().contains("floor"), "{e}");
    assert!(b.remove(&r.name).unwrap());
}

#[test]
fn vm_crash_cases_then_concurrent_creates() {
    let lab = Lab::new(1024, Some(256), true);
    let b = lab.backend(Layout::Linear, 5.0);

    // Killed between lvcreate and mkfs: owned + incomplete; the next create rebuilds it.
    let out = lab.vol(
        false,
        &["create", "berth-home-c1", "32M", "--owner", "t1"],
        Some("after-allocate"),
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", stderr(&out));
    let v = b
        .get(&VolumeName::new("berth-home-c1").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!((v.state, v.owner.as_str()), (VolumeState::Incomplete, "t1"));
    let v = b
        .create(&req("berth-home-c1", "32M", Filesystem::Ext4, "t1"))
        .unwrap();
    assert_eq!(v.state, VolumeState::Complete);

    // Killed between mkfs and completion (thin): GC removes it even though its owner lives.
    let out = lab.vol(
        true,
        &["create", "berth-home-c2", "32M", "--owner", "t1"],
        Some("after-mkfs"),
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", stderr(&out));
    // Killed after create, before mount: a complete volume that mounts.
    let out = lab.vol(
        false,
        &["create", "berth-home-c3", "32M", "--owner", "t3"],
        Some("after-complete"),
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", stderr(&out));
    let v3 = b
        .create(&req("berth-home-c3", "32M", Filesystem::Ext4, "t3"))
        .unwrap();
    assert_eq!(v3.state, VolumeState::Complete);
    let m = lab.dir("c3");
    b.mount(&v3.name, &m, &MountOptions::default()).unwrap();
    b.unmount(&m).unwrap();

    // Killed between lvextend and the filesystem grow: the next resize finishes it.
    let out = lab.vol(
        false,
        &["resize", "berth-home-c3", "64M"],
        Some("after-extend"),
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", stderr(&out));
    assert_eq!(
        b.get(&v3.name).unwrap().unwrap().state,
        VolumeState::Resizing
    );
    assert!(matches!(
        b.resize(&v3.name, Bytes::mib(64)).unwrap(),
        Resized::Unchanged
    ));
    assert_eq!(
        b.get(&v3.name).unwrap().unwrap().state,
        VolumeState::Complete
    );
    b.mount(&v3.name, &m, &MountOptions::default()).unwrap();
    assert!(fs_size(&m) > 50 << 20, "{}", fs_size(&m));
    b.unmount(&m).unwrap();

    // Killed after the snapshot, before it was grown and completed.
    let src = lab.dir("img");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello"), b"hi").unwrap();
    let out = lab.vol(
        true,
        &["image", "img-a", "32M", "--from", src.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let base: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let base = base["name"].as_str().unwrap().to_string();
    let out = lab.vol(
        true,
        &[
            "snapshot",
            "berth-root-c4",
            "--base",
            &base,
            "--owner",
            "t4",
            "64M",
        ],
        Some("after-snapshot"),
    );
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", stderr(&out));

    let is_live =
        |o: &Owner| ["t1", "t3", "t4"].contains(&o.as_str()) || o.as_str().starts_with("image:");
    let r = gc::collect(&b, &is_live).unwrap();
    let mut removed: Vec<String> = r.removed.iter().map(|n| n.to_string()).collect();
    removed.sort();
    assert_eq!(removed, ["berth-home-c2", "berth-root-c4"], "{r:?}");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let left: Vec<String> = b
        .list()
        .unwrap()
        .iter()
        .map(|v| v.name.to_string())
        .collect();
    assert_eq!(
        left,
        vec![
            "berth-home-c1".to_string(),
            "berth-home-c3".into(),
            base.clone()
        ]
    );
    // The owners die: everything goes.
    let r = gc::collect(&b, &|_: &Owner| false).unwrap();
    assert_eq!(r.removed.len(), 3, "{r:?}");
    assert!(b.list().unwrap().is_empty());
    concurrent_creates_from_two_processes(&lab);
}

/// Two processes create one name at once (run at the end of the crash test, in its VG: a
/// volume group per scenario costs ~15 s under emulation).
fn concurrent_creates_from_two_processes(lab: &Lab) {
    let spawn = |name: &str, owner: &str| {
        let args = lab.vol_args(false, &["create", name, "64M", "--owner", owner]);
        Command::new(env!("CARGO_BIN_EXE_berth-vol"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, c) = (
        spawn("berth-home-cc", "same"),
        spawn("berth-home-cc", "same"),
    );
    let (a, c) = (a.wait_with_output().unwrap(), c.wait_with_output().unwrap());
    assert!(
        a.status.success() && c.status.success(),
        "{} / {}",
        stderr(&a),
        stderr(&c)
    );
    assert_eq!(stdout(&a), stdout(&c));
    let (x, y) = (spawn("berth-home-cd", "x"), spawn("berth-home-cd", "y"));
    let (x, y) = (x.wait_with_output().unwrap(), y.wait_with_output().unwrap());
    assert_eq!(
        [x.status.success(), y.status.success()]
            .iter()
            .filter(|s| **s)
            .count(),
        1,
        "{} / {}",
        stderr(&x),
        stderr(&y)
    );
    let loser = if x.status.success() { &y } else { &x };
    assert!(stderr(loser).contains("belongs to"), "{}", stderr(loser));
    let b = lab.backend(Layout::Linear, 5.0);
    let l = b.list().unwrap();
    assert_eq!(l.len(), 2);
    assert!(l.iter().all(|v| v.state == VolumeState::Complete));
}
