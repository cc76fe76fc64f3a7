//! berth's own preparation steps: the run dir, the image (an OCI image unpacked into the
//! shared cache), the root filesystem (an overlay on the image), the bundle, and the
//! container itself. Volume and network steps come from the lvm and netcfg crates and
//! slot in between (see [`default_steps`]).

use std::path::Path;
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::bundle::{self, BundleInputs};
use super::runc::{self, Runtime};
use super::steps::{Step, StepCtx, StepError};

/// The steps for a task, in order. Steps of other crates (volume before the root
/// filesystem, network after it) are inserted by the caller where configured.
pub fn default_steps() -> Vec<Box<dyn Step>> {
    vec![
        Box::new(RunDir),
        Box::new(Image),
        Box::new(Rootfs),
        Box::new(Bundle),
        Box::new(Container),
    ]
}

fn rm_rf(step: &str, path: &Path) -> Result<(), StepError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StepError::io(step, "cannot remove", path, e)),
    }
}

fn is_mounted(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    text.lines().any(|l| l.split(' ').nth(4) == Some(&*target))
}

/// The host side of `/run/berth`: init's status socket lives here.
pub struct RunDir;

impl Step for RunDir {
    fn name(&self) -> &'static str {
        "rundir"
    }
    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let dir = ctx.run_dir();
        std::fs::create_dir_all(&dir).map_err(|e| StepError::io("rundir", "cannot create", &dir, e))
    }
    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        rm_rf("rundir", &ctx.run_dir())
    }
}

/// The image: an OCI image is unpacked into the shared cache (verified, atomically, under
/// a lock; a cache hit does nothing); a root filesystem directory is used as it is. The
/// lower directory is recorded in the checkpoint's outputs. Undo leaves the cache entry,
/// which other tasks share (a failed unpack leaves nothing: it works in a temporary dir).
pub struct Image;

impl Step for Image {
    fn name(&self) -> &'static str {
        "image"
    }
    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let image = &ctx.plan.image;
        let start = Instant::now();
        let hit = image
            .prepare(&ctx.cfg.image_cache)
            .map_err(|e| StepError::new("image", format!("labels.berth.image: {e}")))?;
        if let crate::image::ImageSource::Oci { image: img, .. } = image {
            let user = &img.config.user;
            if !user.is_empty() && user != "root" && user != "0" && user != "0:0" {
                tracing::warn!(image = %img.reference, user = %user, "the image's User is not honoured: berth-init runs as root and app specs name their own users");
            }
            tracing::info!(
                image = %img.reference,
                manifest = %img.manifest.digest,
                cache_hit = hit,
                ms = start.elapsed().as_millis() as u64,
                "image ready"
            );
        }
        if let Ok(mut o) = ctx.outputs.lock() {
            o.image = Some(image.lower().to_path_buf());
        }
        Ok(())
    }
    fn undo(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        Ok(())
    }
}

/// The root filesystem: an overlay with the image as its read-only lower layer, so tasks
/// never change the image and nothing of a task outlives it. Its writable layer (`upper`
/// and `work`) is on the task's scratch volume when the `scratch` step mounted one (the
/// task's `disk` enforced), else in the state dir.
pub struct Rootfs;

impl Step for Rootfs {
    fn name(&self) -> &'static str {
        "rootfs"
    }
    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let base = super::scratch::layer_base(ctx);
        let (upper, work, target) = (
            base.join("upper"),
            base.join("work"),
            ctx.bundle_dir().join("rootfs"),
        );
        if super::rootsnap::applies(&ctx.plan, &ctx.cfg) {
            std::fs::create_dir_all(&target)
                .map_err(|e| StepError::io("rootfs", "cannot create", &target, e))?;
            return super::rootsnap::make(ctx, &target);
        }
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d)
                .map_err(|e| StepError::io("rootfs", "cannot create", d, e))?;
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            ctx.plan.image.lower().display(),
            upper.display(),
            work.display()
        );
        mount(
            Some("overlay"),
            &target,
            Some("overlay"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .map_err(|e| {
            StepError::new(
                "rootfs",
                format!("overlay mount on {}: {e}", target.display()),
            )
        })
    }
    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let state = ctx.state_dir();
        let target = ctx.bundle_dir().join("rootfs");
        // A lazy unmount under a container that still runs (its kill failed) would hide
        // it: the root is kept, and the error keeps the state dir, until it is gone.
        if let Some(why) = container_still_there(ctx) {
            return Err(StepError::new(
                "rootfs",
                format!(
                    "container {} is still there ({why}): its root {} is kept",
                    ctx.plan.container_id,
                    target.display()
                ),
            ));
        }
        if super::rootsnap::applies(&ctx.plan, &ctx.cfg) {
            super::rootsnap::remove(ctx, &target)?;
        }
        if is_mounted(&target) {
            umount2(&target, MntFlags::MNT_DETACH).map_err(|e| {
                StepError::new("rootfs", format!("umount {}: {e}", target.display()))
            })?;
        }
        rm_rf("rootfs", &target)?;
        // A writable layer on the scratch volume goes with the volume (the scratch undo).
        rm_rf("rootfs", &state.join("upper"))?;
        rm_rf("rootfs", &state.join("work"))
    }
}

/// Why the task's container is not gone yet: the runtime still has its record, or its
/// cgroup (`/<cgroup parent>/<id>`, v2 or any v1 controller) still has processes.
fn container_still_there(ctx: &StepCtx) -> Option<String> {
    let id = &ctx.plan.container_id;
    let rt = Container::runtime(ctx);
    if rt.known(id) {
        return Some(format!(
            "the runtime's record {}",
            ctx.cfg.runtime_root.join(id).display()
        ));
    }
    let rel = Path::new(ctx.cfg.cgroup_parent.trim_start_matches('/')).join(id);
    let base = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![base.join(&rel)];
    if let Ok(ctrls) = std::fs::read_dir(base) {
        dirs.extend(ctrls.flatten().map(|c| c.path().join(&rel)));
    }
    dirs.into_iter().find_map(|d| {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).ok()?;
        (!procs.trim().is_empty()).then(|| format!("processes in {}", d.display()))
    })
}

/// `config.json`.
pub struct Bundle;

impl Step for Bundle {
    fn name(&self) -> &'static str {
        "bundle"
    }
    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let out = ctx.outputs();
        let (run_dir, bundle_dir) = (ctx.run_dir(), ctx.bundle_dir());
        let spec = bundle::spec(&BundleInputs {
            plan: &ctx.plan,
            init: &ctx.cfg.init,
            run_dir: &run_dir,
            sandbox: &ctx.sandbox,
            cgroup_parent: &ctx.cfg.cgroup_parent,
            netns: out.netns.as_deref(),
            binds: &out.binds,
        })
        .map_err(|e| StepError::new("bundle", e.to_string()))?;
        bundle::write(&bundle_dir, &spec).map_err(|e| {
            StepError::new(
                "bundle",
                format!("{e}: {:?}", std::error::Error::source(&e)),
            )
        })
    }
    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        match std::fs::remove_file(ctx.bundle_dir().join("config.json")) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StepError::io(
                "bundle",
                "cannot remove",
                &ctx.bundle_dir(),
                e,
            )),
            _ => Ok(()),
        }
    }
}

/// The container: `<runtime> run` under the exit-status wrapper.
pub struct Container;

/// The setting that names the runtime binary (named in errors about it).
pub const RUNTIME_SETTING: &str = "BERTH_EXECUTOR_RUNTIME";

impl Container {
    /// The configured runtime (probed once per executor: runc, crun or another).
    pub fn runtime(ctx: &StepCtx) -> Runtime {
        Runtime::new(&ctx.cfg.runtime, &ctx.cfg.runtime_root)
    }
}

impl Step for Container {
    fn name(&self) -> &'static str {
        "container"
    }
    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        if !ctx.cfg.init.is_file() {
            return Err(StepError::new(
                "container",
                format!("berth-init not found at {}", ctx.cfg.init.display()),
            ));
        }
        // A missing, non-executable or foreign runtime binary is named with its setting,
        // not reported as a spawn failure of the wrapper.
        let probe = runc::probe(&ctx.cfg.runtime)
            .map_err(|e| StepError::new("container", format!("{RUNTIME_SETTING}: {e}")))?;
        tracing::debug!(runtime = %probe.path.display(), version = %probe.version, "runtime");
        let rt = Self::runtime(ctx);
        let exit = ctx.exit_file();
        let _ = std::fs::remove_file(&exit);
        let child = rt
            .run(
                &ctx.plan.container_id,
                &ctx.bundle_dir(),
                &ctx.sandbox.join("stdout"),
                &ctx.sandbox.join("stderr"),
                &exit,
            )
            .map_err(|e| StepError::new("container", e.to_string()))?;
        tracing::debug!(container = %ctx.plan.container_id, wrapper = child.id(), "runtime started");
        if let Ok(mut o) = ctx.outputs.lock() {
            o.wrapper_pid = Some(child.id());
        }
        // Recorded at once, not only when the step is marked done: an executor crash in
        // between would leave recovery's undo without the wrapper (it also looks for the
        // wrapper by its exit file, see `undo`).
        let state = ctx.state_dir();
        if let Some(mut cp) = super::steps::Checkpoint::load(&state) {
            cp.outputs.wrapper_pid = Some(child.id());
            if let Err(e) = cp.save(&state) {
                tracing::warn!(error = %e, "cannot record the wrapper's pid early");
            }
        }
        // The wrapper is reaped by a thread. The runner learns of its exit through a
        // pidfd ([`wrapper_pidfd`]: readable once the wrapper exited, after it wrote the
        // exit file), which also works for a container adopted after an executor restart.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        Ok(())
    }
    fn undo(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let rt = Self::runtime(ctx);
        let id = &ctx.plan.container_id;
        tracing::debug!(container = %id, "removing the container");
        // The foreground `run` removes the container itself when it ends: only one the
        // runtime keeps state for needs a KILL and a delete (no runtime command at all on
        // a normal teardown). While the wrapper lives, the container is running or about
        // to be created (a failure right after the spawn): KILL it once the runtime
        // knows it. The wrapper is recognised by the exit file on its command line, not
        // by its pid alone, which may belong to another process after an executor
        // restart.
        let exit = ctx.exit_file();
        // A wrapper spawned just before an executor crash may be unrecorded: found by its
        // exit file, so the container it is about to create is killed and waited for
        // instead of being created afterwards on a removed root.
        let wrapper = ctx
            .outputs()
            .wrapper_pid
            .filter(|p| is_wrapper(*p, &exit))
            .or_else(|| find_wrapper(&exit));
        let end = Instant::now() + Duration::from_secs(10);
        let mut killed = false;
        loop {
            if !killed
                && rt.known(id)
                && matches!(rt.state(id), Ok(Some(s)) if s.status != "stopped")
            {
                killed = rt.kill(id, "KILL").is_ok();
            }
            if !wrapper.is_some_and(|p| is_wrapper(p, &exit)) || Instant::now() >= end {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if rt.known(id) {
            rt.delete(id)
                .map_err(|e| StepError::new("container", e.to_string()))?;
        }
        let _ = std::fs::remove_file(&exit);
        tracing::debug!(container = %id, "container removed");
        Ok(())
    }
}

/// A pidfd of the container's exit-status wrapper (`outputs.wrapper_pid`): it becomes
/// readable when the wrapper exits, which it does right after writing the exit file.
/// `None` when the wrapper is not known, already exited, or the system has no
/// `pidfd_open` (Linux < 5.3): the runner then finds the exit file by its slower poll.
pub fn wrapper_pidfd(ctx: &StepCtx) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = ctx.outputs().wrapper_pid?;
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open(2) takes a pid and flags (0) and returns a new descriptor or -1;
    // no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = std::os::fd::RawFd::try_from(fd)
        .ok()
        .filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` was just returned by pidfd_open: a new descriptor nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // The pidfd pins that process; after an executor restart the pid may name another
    // one by now, so it must still be the wrapper writing this task's exit file.
    is_wrapper(pid as u32, &ctx.exit_file()).then_some(fd)
}

/// A live wrapper writing `exit_file`, searched among every process.
fn find_wrapper(exit_file: &Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| *pid != std::process::id() && is_wrapper(*pid, exit_file))
}

/// Whether `pid` is a live (not zombie) wrapper writing `exit_file`.
fn is_wrapper(pid: u32, exit_file: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let target = exit_file.as_os_str().as_encoded_bytes();
    cmdline.split(|b| *b == 0).any(|arg| arg == target) && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[cfg(test)]
mod container_tests {
    use super::*;

    #[test]
    fn the_root_is_kept_while_the_runtime_knows_the_container() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = crate::task::volume::tests::ctx(dir.path());
        ctx.cfg.runtime_root = dir.path().join("runc");
        let target = ctx.bundle_dir().join("rootfs");
        std::fs::create_dir_all(target.join("etc")).unwrap();
        let record = ctx.cfg.runtime_root.join(&ctx.plan.container_id);
        std::fs::create_dir_all(&record).unwrap();
        let e = Rootfs.undo(&ctx).unwrap_err();
        assert!(e.to_string().contains("still there"), "{e}");
        assert!(target.join("etc").exists(), "the root was removed");
        std::fs::remove_dir(&record).unwrap();
        Rootfs.undo(&ctx).unwrap();
        assert!(!target.exists());
    }

    /// A wrapper the checkpoint does not name (the executor crashed right after spawning
    /// it): undo finds it by its exit file and waits for it to end.
    #[test]
    fn undo_waits_for_an_unrecorded_wrapper() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = crate::task::volume::tests::ctx(dir.path());
        ctx.cfg.runtime_root = dir.path().join("runc");
        let exit = ctx.exit_file();
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg("read x; true")
            .arg("berth-runtime")
            .arg(&exit)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        while !is_wrapper(child.id(), &exit) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(find_wrapper(&exit), Some(child.id()));
        assert_eq!(ctx.outputs().wrapper_pid, None);
        // The wrapper ends a little later (its runtime saw the container go).
        let stdin = child.stdin.take().unwrap();
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            drop(stdin);
        });
        Container.undo(&ctx).unwrap();
        closer.join().unwrap();
        assert!(
            child.try_wait().unwrap().is_some() || is_zombie(child.id()),
            "undo returned while the wrapper still ran"
        );
        child.wait().unwrap();
    }

    #[test]
    fn the_wrapper_is_recognised_by_its_exit_file_not_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let (exit, other) = (dir.path().join("exit"), dir.path().join("other"));
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            // A builtin that blocks: no child of its own to outlive the test.
            .arg("read x; true")
            .arg("berth-runtime")
            .arg(&exit)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // Until the fork has exec'd, the pid is a copy of this test.
        let end = Instant::now() + Duration::from_secs(5);
        while !is_wrapper(pid, &exit) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(is_wrapper(pid, &exit));
        assert!(!is_wrapper(pid, &other));
        assert!(!is_wrapper(std::process::id(), &exit));
        child.kill().unwrap();
        // A zombie is no live wrapper; a reaped one is gone.
        let end = Instant::now() + Duration::from_secs(5);
        while !is_zombie(pid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!is_wrapper(pid, &exit));
        child.wait().unwrap();
        assert!(!is_wrapper(pid, &exit));
    }
}
