use super::*;
use crate::task::plan::Mode;
use crate::task::steps::{Checkpoint, Outputs, Phase};
use berth_lvm::{Bytes, Filesystem, MountOptions, VolumeError, VolumeName};
use berth_lvm::{Capacity, Health, Resized, Volume, VolumeState};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

/// Records calls; volumes live in a list (also used by the scratch step's tests).
#[derive(Default)]
pub(in crate::task) struct FakeInner {
    pub(in crate::task) log: Mutex<Vec<String>>,
    pub(in crate::task) vols: Mutex<Vec<Volume>>,
    pub(in crate::task) mounted: Mutex<Vec<PathBuf>>,
    pub(in crate::task) fail_unmount: bool,
    pub(in crate::task) lock_dir: PathBuf,
}

#[derive(Clone, Default)]
pub(in crate::task) struct Fake(pub(in crate::task) Arc<FakeInner>);

impl std::ops::Deref for Fake {
    type Target = FakeInner;
    fn deref(&self) -> &FakeInner {
        &self.0
    }
}

impl Fake {
    fn record(&self, s: String) {
        self.0.log.lock().unwrap().push(s);
    }
}

impl Backend for Fake {
    fn create(&self, req: &CreateRequest) -> Result<Volume, VolumeError> {
        self.record(format!("create {} {} {}", req.name, req.size, req.owner));
        let mut vols = self.vols.lock().unwrap();
        if let Some(v) = vols.iter().find(|v| v.name == req.name) {
            return Ok(v.clone());
        }
        let v = Volume {
            name: req.name.clone(),
            owner: req.owner.clone(),
            size: req.size,
            fs: req.fs,
            state: VolumeState::Complete,
            device: "/dev/fake".into(),
            layout: "fake".into(),
        };
        vols.push(v.clone());
        Ok(v)
    }
    fn resize(&self, name: &VolumeName, size: Bytes) -> Result<Resized, VolumeError> {
        self.record(format!("resize {name} {size}"));
        let mut vols = self.vols.lock().unwrap();
        let v = vols.iter_mut().find(|v| &v.name == name).unwrap();
        let r = Resized::between(v.size, size);
        v.size = size;
        Ok(r)
    }
    fn mount(&self, name: &VolumeName, t: &Path, o: &MountOptions) -> Result<(), VolumeError> {
        self.record(format!("mount {name} {} {}", t.display(), o.to_arg()?));
        self.mounted.lock().unwrap().push(t.into());
        Ok(())
    }
    fn unmount(&self, t: &Path) -> Result<(), VolumeError> {
        if self.fail_unmount {
            return Err(VolumeError::io(
                "umount",
                t,
                std::io::Error::from_raw_os_error(libc::EBUSY),
            ));
        }
        let was = {
            let mut m = self.mounted.lock().unwrap();
            let n = m.len();
            m.retain(|p| p != t);
            n != m.len()
        };
        if was {
            self.record(format!("unmount {}", t.display()));
        }
        Ok(())
    }
    fn remove(&self, name: &VolumeName) -> Result<bool, VolumeError> {
        let mut vols = self.vols.lock().unwrap();
        let n = vols.len();
        vols.retain(|v| &v.name != name);
        let gone = n != vols.len();
        if gone {
            self.record(format!("remove {name}"));
        }
        Ok(gone)
    }
    fn remove_locked(
        &self,
        name: &VolumeName,
        _: &berth_lvm::lock::VolumeLock,
    ) -> Result<bool, VolumeError> {
        self.remove(name)
    }
    fn list(&self) -> Result<Vec<Volume>, VolumeError> {
        Ok(self.vols.lock().unwrap().clone())
    }
    fn capacity(&self) -> Result<Capacity, VolumeError> {
        Err(VolumeError::Unsupported {
            backend: "fake",
            what: "capacity",
        })
    }
    fn health(&self) -> Result<Health, VolumeError> {
        Ok(Health::default())
    }
    fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }
}

pub(in crate::task) fn ctx(dir: &Path) -> StepCtx {
    StepCtx {
        plan: Plan {
            task_id: "web.1".into(),
            container_id: "berth-web.1".into(),
            hostname: "web".into(),
            cpus: 0.0,
            mem_mb: 0.0,
            disk_mb: 0.0,
            ports: vec![],
            home_mb: 64.0,
            bandwidth_mbit: 0.0,
            image: "/".into(),
            mode: Mode::Command("true".into()),
            env: vec![],
            health: None,
        },
        cfg: RunConfig {
            state_dir: dir.join("state"),
            run_dir: dir.join("run"),
            ..RunConfig::default()
        },
        sandbox: dir.into(),
        outputs: Mutex::new(Outputs::default()),
    }
}

/// Settings with the loopfile backend in its default directory.
pub(in crate::task) fn loopfile() -> VolumeConfig {
    VolumeConfig {
        backend: Some("loopfile".into()),
        loopfile_dir: DEFAULT_LOOPFILE_DIR.into(),
        ..VolumeConfig::default()
    }
}

/// Opens `fake` (for a step's `with_backend`).
pub(in crate::task) fn opener_of(fake: &Fake) -> Opener {
    let f = fake.clone();
    Arc::new(move || Ok(Box::new(f.clone()) as Box<dyn Backend>))
}

fn step(fake: &Fake, retain: Retain) -> HomeVolume {
    let v = HomeVolume::from_settings("web.1", 64.0, &loopfile())
        .unwrap()
        .unwrap();
    HomeVolume::with_backend(v.req, retain, "fake", opener_of(fake))
}

pub(in crate::task) fn log(f: &Fake) -> Vec<String> {
    std::mem::take(&mut *f.log.lock().unwrap())
}

/// A fake that fails every unmount (EBUSY).
pub(in crate::task) fn busy_fake() -> Fake {
    Fake(Arc::new(FakeInner {
        fail_unmount: true,
        ..FakeInner::default()
    }))
}

/// Runs `s`: its mount point is a directory, and the log starts with the volume created
/// (`<name_prefix>...`, 64 MiB, owner web.1) then mounted `rw,nosuid,nodev` there.
/// Returns the mount point and the whole log.
pub(in crate::task) fn run_created_and_mounted<K: Kind>(
    s: &TaskVolume<K>,
    c: &StepCtx,
    fake: &Fake,
    name_prefix: &str,
) -> (PathBuf, Vec<String>) {
    s.run(c).unwrap();
    let mp = TaskVolume::<K>::mount_point(c);
    assert!(mp.is_dir());
    let l = log(fake);
    assert!(
        l[0].starts_with(&format!("create {name_prefix}")) && l[0].ends_with(" 64MiB web.1"),
        "{l:?}"
    );
    assert_eq!(
        l[1],
        format!("mount {} {} rw,nosuid,nodev", s.req.name, mp.display())
    );
    (mp, l)
}

/// Undo unmounts and removes the volume and its mount point; a second undo does nothing.
pub(in crate::task) fn undo_removes_idempotently<K: Kind>(
    s: &TaskVolume<K>,
    c: &StepCtx,
    fake: &Fake,
) {
    let mp = TaskVolume::<K>::mount_point(c);
    s.undo(c).unwrap();
    assert_eq!(
        log(fake),
        [
            format!("unmount {}", mp.display()),
            format!("remove {}", s.req.name)
        ]
    );
    assert!(!mp.exists());
    s.undo(c).unwrap();
    assert!(log(fake).is_empty());
}

/// Undo fails (`want` starts the error) on an unmount failure, keeping the volume and
/// the mount point.
pub(in crate::task) fn undo_fails_keeping_both<K: Kind>(
    s: &TaskVolume<K>,
    c: &StepCtx,
    fake: &Fake,
    want: &str,
) {
    let e = s.undo(c).unwrap_err().to_string();
    assert!(e.starts_with(want), "{e}");
    assert_eq!(fake.list().unwrap().len(), 1);
    assert!(TaskVolume::<K>::mount_point(c).is_dir());
}

#[test]
fn no_home_no_step_and_settings_are_checked() {
    let none = VolumeConfig::default();
    assert!(HomeVolume::from_settings("t", 0.0, &none)
        .unwrap()
        .is_none());
    let e = HomeVolume::from_settings("t", 64.0, &none)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("resources.home") && e.contains(ENV_BACKEND),
        "{e}"
    );
    let lf = VolumeConfig {
        backend: Some("loopfile".into()),
        loopfile_dir: "/v".into(),
        ..VolumeConfig::default()
    };
    let bad = |patch: &dyn Fn(&mut VolumeConfig), want: &str| {
        let mut c = lf.clone();
        patch(&mut c);
        let e = HomeVolume::from_settings("t", 64.0, &c)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{e} should name {want}");
    };
    bad(&|c| c.backend = Some("zfs".into()), ENV_BACKEND);
    bad(&|c| c.fs = Some("btrfs".into()), ENV_FS);
    bad(&|c| c.retain = Some("sometimes".into()), ENV_RETAIN);
    bad(&|c| c.loopfile_dir = "rel".into(), ENV_DIR);
    // Below the filesystem's minimum: the task's fault, naming resources.home.
    let e = HomeVolume::from_settings("t", 4.0, &lf)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("resources.home") && e.contains("minimum"),
        "{e}"
    );
    let xfs = VolumeConfig {
        fs: Some("xfs".into()),
        ..lf.clone()
    };
    let e = HomeVolume::from_settings("t", 64.0, &xfs)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("resources.home") && e.contains("xfs"), "{e}");
    let v = HomeVolume::from_settings("web.1", 63.5, &lf)
        .unwrap()
        .unwrap();
    assert_eq!(v.req.size, Bytes::mib(64));
    assert_eq!(v.req.fs, Filesystem::Ext4);
    assert_eq!(v.req.owner.as_str(), "web.1");
    assert!(v.req.name.as_str().starts_with("berth-home-web-1-"));
    assert_eq!(v.retain, Retain::Never);
}

#[test]
fn lvm_settings_come_from_a_strict_json_file() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("lvm.json");
    let c = VolumeConfig {
        backend: Some("lvm".into()),
        lvm_config: path.clone(),
        ..VolumeConfig::default()
    };
    let e = HomeVolume::from_settings("t", 64.0, &c)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(ENV_LVM_CONFIG) && e.contains("cannot read"),
        "{e}"
    );
    std::fs::write(&path, r#"{"vg": "vg0", "colour": "blue"}"#).unwrap();
    let e = HomeVolume::from_settings("t", 64.0, &c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown field") && e.contains("colour"), "{e}");
    std::fs::write(&path, r#"{"vg": "vg0", "home_layout": "thin"}"#).unwrap();
    let e = HomeVolume::from_settings("t", 64.0, &c)
        .unwrap_err()
        .to_string();
    assert!(e.contains("thin_pool"), "{e}");
    std::fs::write(&path, r#"{"vg": "vg0"}"#).unwrap();
    let v = HomeVolume::from_settings("t", 64.0, &c).unwrap().unwrap();
    assert_eq!(v.backend, "lvm");
}

#[test]
fn owners_are_task_ids_or_the_volume_name() {
    let n = VolumeName::for_task(VolumeKind::Home, "a b/c").unwrap();
    assert_eq!(owner_for_task("a b/c", &n).as_str(), n.as_str());
    let n = VolumeName::for_task(VolumeKind::Home, "web.2f4d").unwrap();
    assert_eq!(owner_for_task("web.2f4d", &n).as_str(), "web.2f4d");
}

#[test]
fn run_mounts_and_binds_undo_removes_idempotently() {
    let d = tempfile::tempdir().unwrap();
    let c = ctx(d.path());
    let fake = Fake::default();
    let s = step(&fake, Retain::Never);
    let (mp, _) = run_created_and_mounted(&s, &c, &fake, "berth-home-web-1-");
    assert_eq!(
        c.outputs().binds,
        vec![(mp.clone(), "/home".to_string(), false)]
    );
    // Run again (a retried step): no second bind.
    s.run(&c).unwrap();
    assert_eq!(c.outputs().binds.len(), 1);
    log(&fake);
    // Idempotent, and fine when nothing was ever made (a half-done run).
    undo_removes_idempotently(&s, &c, &fake);
}

#[test]
fn a_kept_volume_smaller_than_asked_is_grown() {
    let d = tempfile::tempdir().unwrap();
    let c = ctx(d.path());
    let fake = Fake::default();
    let mut s = step(&fake, Retain::Never);
    s.req.size = Bytes::mib(32);
    fake.create(&s.req).unwrap();
    s.req.size = Bytes::mib(64);
    log(&fake);
    s.run(&c).unwrap();
    let l = log(&fake);
    assert!(
        l[1].starts_with("resize ") && l[1].ends_with(" 64MiB"),
        "{l:?}"
    );
}

#[test]
fn retention_keeps_only_volumes_of_started_containers() {
    let d = tempfile::tempdir().unwrap();
    let c = ctx(d.path());
    let fake = Fake::default();
    let s = step(&fake, Retain::Always);
    // A launch that failed before the container: removed despite `always`.
    s.run(&c).unwrap();
    let cp = Checkpoint {
        container_id: "berth-web.1".into(),
        steps: vec![
            ("volume".into(), Phase::Done),
            ("container".into(), Phase::Started),
        ],
        outputs: c.outputs(),
    };
    cp.save(&c.state_dir()).unwrap();
    s.undo(&c).unwrap();
    assert!(fake.list().unwrap().is_empty());
    // The container was started: unmounted and kept.
    s.run(&c).unwrap();
    let mut cp = cp;
    cp.steps[1].1 = Phase::Done;
    cp.save(&c.state_dir()).unwrap();
    log(&fake);
    s.undo(&c).unwrap();
    assert_eq!(
        log(&fake),
        [format!("unmount {}", HomeVolume::mount_point(&c).display())]
    );
    let kept = fake.list().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].owner.as_str(), "web.1");
}

#[test]
fn an_unmount_failure_keeps_the_volume_and_the_mount_point() {
    let d = tempfile::tempdir().unwrap();
    let c = ctx(d.path());
    let fake = busy_fake();
    let s = step(&fake, Retain::Never);
    s.run(&c).unwrap();
    undo_fails_keeping_both(&s, &c, &fake, "volume: unmounting berth-home-web-1-");
}
