//! Unit tests of the lvm backend's logic against a recording fake [`Runner`] that answers
//! `fullreport` with real captured output (tests/fixtures).

use std::sync::Mutex;

use super::image::{image_volume_name, ImageSpec};
use super::{ready, Layout, LvmBackend, LvmConfig};
use crate::exec::{Cmd, ExecError, Output, Runner};
use crate::name::{Owner, VolumeName};
use crate::size::Bytes;
use crate::volume::{Backend, CreateRequest, Filesystem, VolumeError, VolumeState};

struct Fake {
    report: Vec<u8>,
    calls: Mutex<Vec<String>>,
    /// What `dmsetup status` prints.
    dm_status: Mutex<String>,
    /// The next command starting with this fails (exit 5).
    fail_once: Mutex<Option<String>>,
}

impl Runner for Fake {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        let line = cmd.to_string();
        self.calls.lock().unwrap().push(line.clone());
        let mut fail = self.fail_once.lock().unwrap();
        if fail.as_deref().is_some_and(|p| line.starts_with(p)) {
            *fail = None;
            return Ok(Output {
                code: Some(5),
                stdout: Vec::new(),
                stderr: b"  Failed to find logical volume".to_vec(),
            });
        }
        let stdout = match cmd.args.first().map(String::as_str) {
            Some("fullreport") => self.report.clone(),
            Some("status") => self.dm_status.lock().unwrap().clone().into_bytes(),
            _ => Vec::new(),
        };
        Ok(Output {
            code: Some(0),
            stdout,
            stderr: Vec::new(),
        })
    }
}

fn backend(
    fixture: &str,
    layout: Layout,
    floor: f64,
    lock_dir: &std::path::Path,
) -> (LvmBackend, &'static Fake) {
    let report = std::fs::read(format!(
        "{}/tests/fixtures/{fixture}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let fake: &'static Fake = Box::leak(Box::new(Fake {
        report,
        calls: Mutex::new(Vec::new()),
        dm_status: Mutex::new(String::new()),
        fail_once: Mutex::new(None),
    }));
    struct Shared(&'static Fake);
    impl Runner for Shared {
        fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
            self.0.run(cmd)
        }
    }
    let mut cfg = LvmConfig::new("capvg");
    cfg.thin_pool = Some("pool".into());
    cfg.home_layout = layout;
    cfg.free_floor_percent = floor;
    cfg.lock_dir = lock_dir.to_path_buf();
    cfg.no_udev = Some(false);
    (
        LvmBackend::with_runner(cfg, Box::new(Shared(fake))).unwrap(),
        fake,
    )
}

fn req(name: &str, owner: &str, size: Bytes) -> CreateRequest {
    CreateRequest {
        name: VolumeName::new(name).unwrap(),
        size,
        fs: Filesystem::Ext4,
        owner: Owner::new(owner).unwrap(),
    }
}

#[test]
fn create_runs_report_lvcreate_mkfs_then_clears_the_marker() {
    let locks = tempfile::tempdir().unwrap();
    let (b, fake) = backend(
        "fullreport-thin-inactive.json",
        Layout::Linear,
        10.0,
        locks.path(),
    );
    let v = b
        .create(&req("berth-home-new-1", "t", Bytes(10 << 20)))
        .unwrap();
    // 10 MiB usable: ~19 MiB with ext4's journal and metadata, rounded up to 4 MiB extents.
    assert_eq!(
        v.size,
        Bytes(20 << 20),
        "device size for 10 MiB usable, in whole extents"
    );
    assert_eq!(v.state, VolumeState::Complete);
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "{calls:#?}");
    assert!(calls[0].starts_with("lvm fullreport"));
    assert!(calls[1].starts_with("lvm lvcreate") && calls[1].contains("--addtag berth.incomplete"));
    assert!(calls[1].contains("--size 20971520b"));
    assert_eq!(
        calls[2],
        "mkfs.ext4 -q -F -b 4096 -i 16384 -I 256 -E nodiscard,lazy_itable_init=1 -m 0 /dev/capvg/berth-home-new-1"
    );
    assert_eq!(
        calls[3],
        "lvm lvchange --deltag berth.incomplete capvg/berth-home-new-1"
    );
}

#[test]
fn existing_incomplete_volume_is_removed_and_rebuilt() {
    let locks = tempfile::tempdir().unwrap();
    let (b, fake) = backend(
        "fullreport-thin-inactive.json",
        Layout::Linear,
        10.0,
        locks.path(),
    );
    // The fixture's berth-home-a-1234abcd is owned by task-a.1 and incomplete.
    b.create(&req("berth-home-a-1234abcd", "task-a.1", Bytes(64 << 20)))
        .unwrap();
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls[1], "lvm lvremove --yes capvg/berth-home-a-1234abcd");
    assert!(calls[3].starts_with("lvm lvcreate"));
}

#[test]
fn other_owner_foreign_lv_and_floor_are_refused_without_changes() {
    let locks = tempfile::tempdir().unwrap();
    let (b, fake) = backend(
        "fullreport-thin-inactive.json",
        Layout::Linear,
        10.0,
        locks.path(),
    );
    let e = b
        .create(&req("berth-home-a-1234abcd", "intruder", Bytes(64 << 20)))
        .unwrap_err();
    assert!(matches!(e, VolumeError::OwnedByOther { .. }), "{e}");
    let e = b.remove(&VolumeName::new("other").unwrap()).unwrap_err();
    assert!(matches!(e, VolumeError::NotOurs { .. }), "{e}");
    let e = b
        .create(&req("berth-home-huge", "t", Bytes(2 << 30)))
        .unwrap_err();
    assert!(matches!(e, VolumeError::BelowFloor { .. }), "{e}");
    let (t, tfake) = backend(
        "fullreport-pool-80pct.json",
        Layout::Thin,
        25.0,
        locks.path(),
    );
    let e = t
        .create(&req("berth-home-thin-x", "t", Bytes(64 << 20)))
        .unwrap_err();
    assert!(e.to_string().contains("79.88% full"), "{e}");
    for calls in [
        fake.calls.lock().unwrap().clone(),
        tfake.calls.lock().unwrap().clone(),
    ] {
        assert!(
            calls.iter().all(|c| c.starts_with("lvm fullreport")),
            "only reads: {calls:#?}"
        );
    }
}

#[test]
fn resize_refuses_shrink_and_skips_same_size() {
    let locks = tempfile::tempdir().unwrap();
    let (b, fake) = backend(
        "fullreport-snapshots-readonly.json",
        Layout::Linear,
        10.0,
        locks.path(),
    );
    let n = VolumeName::new("berth-home-a-1234abcd").unwrap(); // 32 MiB, complete
    let e = b.resize(&n, Bytes(16 << 20)).unwrap_err();
    assert!(e.to_string().contains("grow only"), "{e}");
    // 20 MiB usable needs ~29 MiB of device: 32 MiB in whole extents, what it has.
    assert_eq!(
        b.resize(&n, Bytes(20 << 20)).unwrap(),
        crate::volume::Resized::Unchanged,
        "rounds to 32 MiB"
    );
    assert!(fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .all(|c| c.starts_with("lvm fullreport")));
}

#[test]
fn a_root_of_a_marked_base_needs_no_report() {
    let locks = tempfile::tempdir().unwrap();
    let (b, fake) = backend(
        "fullreport-thin-inactive.json",
        Layout::Thin,
        10.0,
        locks.path(),
    );
    let base = image_volume_name("app:1").unwrap();
    ready::write(locks.path(), &base, Bytes(320 << 20), Filesystem::Ext4);
    *fake.dm_status.lock().unwrap() =
        "0 1843200 thin-pool 3 10/100 20/100 - rw no_discard_passdown error_if_no_space - 1024\n"
            .into();
    let fill = |_: &std::path::Path| -> std::io::Result<()> { Ok(()) };
    let spec = ImageSpec {
        id: "app:1",
        size: Bytes(320 << 20),
        fs: Filesystem::Ext4,
        fill: &fill,
    };
    let name = VolumeName::new("berth-root-t-1").unwrap();
    let owner = Owner::new("t").unwrap();
    let v = b
        .image_root(&spec, &name, &owner, Bytes(100 << 20), true)
        .unwrap();
    assert_eq!((v.size, v.state), (Bytes(320 << 20), VolumeState::Complete));
    assert_eq!(v.layout, "snapshot");
    let calls = std::mem::take(&mut *fake.calls.lock().unwrap());
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0], "dmsetup status --noflush capvg-pool-tpool");
    assert!(
        calls[1].starts_with("lvm lvcreate --config activation/monitoring=0 --yes --snapshot")
            && calls[1].ends_with(&format!("capvg/{base}"))
            && !calls[1].contains("incomplete"),
        "{calls:#?}"
    );

    // A pool at the floor refuses the root before anything changes.
    *fake.dm_status.lock().unwrap() = "0 1843200 thin-pool 3 10/100 95/100 - rw\n".into();
    let e = b
        .image_root(&spec, &name, &owner, Bytes(100 << 20), true)
        .unwrap_err();
    assert!(e.to_string().contains("95.00% full"), "{e}");
    let calls = std::mem::take(&mut *fake.calls.lock().unwrap());
    assert_eq!(calls, ["dmsetup status --noflush capvg-pool-tpool"]);

    // A root larger than the base is grown: the full path, from a report.
    *fake.dm_status.lock().unwrap() = "0 1843200 thin-pool 3 10/100 20/100 - rw\n".into();
    let _ = b.image_root(&spec, &name, &owner, Bytes(1 << 30), true);
    let calls = std::mem::take(&mut *fake.calls.lock().unwrap());
    assert!(calls[0].starts_with("lvm fullreport"), "{calls:#?}");

    // The base went behind berth's back: lvcreate fails, the full path rebuilds the base
    // (the report does not have it), clearing the marker first and writing it when done.
    *fake.fail_once.lock().unwrap() = Some("lvm lvcreate --config".into());
    b.image_root(&spec, &name, &owner, Bytes(100 << 20), true)
        .unwrap();
    let calls = std::mem::take(&mut *fake.calls.lock().unwrap());
    assert!(calls[1].contains("--snapshot"), "{calls:#?}");
    assert!(calls[2].starts_with("lvm fullreport"), "{calls:#?}");
    assert!(
        calls[3].starts_with("lvm lvcreate") && calls[3].contains("--addtag berth.image"),
        "{calls:#?}"
    );
    assert!(calls.last().unwrap().contains("--snapshot"), "{calls:#?}");
    assert!(ready::read(locks.path(), &base).is_some());
}
