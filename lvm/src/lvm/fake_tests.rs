//! Unit tests of the lvm backend's logic against a recording fake [`Runner`] that answers
//! `fullreport` with real captured output (tests/fixtures).

use std::sync::Mutex;

use super::{Layout, LvmBackend, LvmConfig};
use crate::exec::{Cmd, ExecError, Output, Runner};
use crate::name::{Owner, VolumeName};
use crate::size::Bytes;
use crate::volume::{Backend, CreateRequest, Filesystem, VolumeError, VolumeState};

struct Fake {
    report: Vec<u8>,
    calls: Mutex<Vec<String>>,
}

impl Runner for Fake {
    fn run(&self, cmd: &Cmd) -> Result<Output, ExecError> {
        self.calls.lock().unwrap().push(cmd.to_string());
        let stdout = if cmd.args.first().map(String::as_str) == Some("fullreport") {
            self.report.clone()
        } else {
            Vec::new()
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
