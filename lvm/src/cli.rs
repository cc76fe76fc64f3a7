//! `berth-vol`: the operator's (and the crash tests') command line to the volume backends.
//! Output is one JSON object per line on stdout, so scripts and tests can read it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;

use crate::crash::CrashPoints;
use crate::exec::SystemRunner;
use crate::gc;
use crate::loopfile::LoopfileBackend;
use crate::lvm::{Layout, LvmBackend, LvmConfig};
use crate::name::{Owner, VolumeKind, VolumeName};
use crate::size::Bytes;
use crate::volume::{
    Backend, CreateRequest, Filesystem, MountOptions, Resized, Volume, VolumeError, VolumeState,
};

#[derive(Debug, Parser)]
#[command(
    name = "berth-vol",
    version = env!("BERTH_VERSION"),
    about = "Create, grow, mount, list and garbage-collect berth volumes"
)]
pub struct Cli {
    #[command(flatten)]
    pub backend: BackendArgs,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendKind {
    Loopfile,
    Lvm,
}

#[derive(Debug, clap::Args)]
pub struct BackendArgs {
    /// Which backend: `loopfile` (sparse files + loop devices) or `lvm`.
    #[arg(long, value_enum, default_value = "loopfile")]
    pub backend: BackendKind,
    /// loopfile: directory holding the volume files.
    #[arg(long, default_value = "/var/lib/berth/volumes")]
    pub dir: PathBuf,
    /// lvm: volume group to allocate in.
    #[arg(long)]
    pub vg: Option<String>,
    /// lvm: thin pool (in the VG) for thin homes, image bases and snapshot roots.
    #[arg(long)]
    pub thin_pool: Option<String>,
    /// lvm: allocate /home volumes as thin LVs instead of linear ones.
    #[arg(long)]
    pub thin: bool,
    /// lvm: refuse new volumes below this free percentage of the VG (linear) or pool (thin).
    #[arg(long, default_value_t = 10.0)]
    pub floor_percent: f64,
    /// lvm: directory of the per-volume lock files.
    #[arg(long, default_value = "/run/lock/berth-lvm")]
    pub lock_dir: PathBuf,
    /// lvm: don't wait for udev (DM_DISABLE_UDEV=1, --noudevsync). Default: only when udev
    /// is not running.
    #[arg(long)]
    pub no_udev: bool,
    /// lvm: extra settings for every lvm call, passed as --config.
    #[arg(long)]
    pub lvm_config: Option<String>,
    /// Abort the process at this named step (crash-safety tests only).
    #[arg(long, env = "BERTH_VOL_CRASH_AT", hide = true)]
    pub crash_at: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a formatted volume (idempotent for the same owner).
    Create {
        name: String,
        /// Size, e.g. 10G, 512MiB.
        size: Bytes,
        #[arg(long)]
        owner: String,
        #[arg(long, default_value = "ext4")]
        fs: Filesystem,
    },
    /// Grow a volume and its filesystem (online).
    Resize { name: String, size: Bytes },
    /// Mount a volume at a directory.
    Mount {
        name: String,
        target: PathBuf,
        #[arg(long)]
        read_only: bool,
        /// Extra mount options, e.g. -o noatime -o nodev.
        #[arg(short = 'o')]
        options: Vec<String>,
    },
    /// Unmount a directory.
    Unmount { target: PathBuf },
    /// Remove a volume (absent is fine).
    Remove { name: String },
    /// List berth's volumes.
    List,
    /// Total and free space (and thin pool use).
    Capacity,
    /// Check the backend; exits 1 if unhealthy.
    Health,
    /// Remove incomplete volumes and those whose owner is not among --live.
    Gc {
        #[arg(long)]
        live: Vec<String>,
    },
    /// Print the volume name for a task id.
    Name {
        #[arg(long, default_value = "home")]
        kind: String,
        task_id: String,
    },
    /// lvm: create (or reuse) the base volume of an image, filled from a directory by `cp -a`.
    Image {
        image_id: String,
        size: Bytes,
        #[arg(long)]
        from: PathBuf,
        #[arg(long, default_value = "ext4")]
        fs: Filesystem,
    },
    /// lvm: a container root as a thin snapshot of an image base.
    Snapshot {
        name: String,
        #[arg(long)]
        base: String,
        #[arg(long)]
        owner: String,
        size: Bytes,
    },
}

fn vol_json(v: &Volume) -> serde_json::Value {
    json!({
        "name": v.name.as_str(), "owner": v.owner.as_str(), "size": v.size.0, "fs": v.fs.as_str(),
        "state": match v.state { VolumeState::Complete => "complete", VolumeState::Incomplete => "incomplete", VolumeState::Resizing => "resizing" },
        "device": v.device, "layout": v.layout,
    })
}

pub fn lvm_backend(a: &BackendArgs) -> Result<LvmBackend, VolumeError> {
    let vg = a.vg.as_deref().ok_or(VolumeError::Unsupported {
        backend: "lvm",
        what: "running without --vg",
    })?;
    let mut cfg = LvmConfig::new(vg);
    cfg.thin_pool = a.thin_pool.clone();
    cfg.home_layout = if a.thin { Layout::Thin } else { Layout::Linear };
    cfg.free_floor_percent = a.floor_percent;
    cfg.lock_dir = a.lock_dir.clone();
    cfg.no_udev = a.no_udev.then_some(true);
    cfg.lvm_config = a.lvm_config.clone();
    let mut b = LvmBackend::new(cfg)?;
    b.crash = CrashPoints {
        crash_at: a.crash_at.clone(),
    };
    Ok(b)
}

pub fn open_backend(a: &BackendArgs) -> Result<Box<dyn Backend>, VolumeError> {
    Ok(match a.backend {
        BackendKind::Loopfile => {
            let mut b = LoopfileBackend::new(&a.dir, Box::new(SystemRunner::default()))?;
            b.crash = CrashPoints {
                crash_at: a.crash_at.clone(),
            };
            Box::new(b)
        }
        BackendKind::Lvm => Box::new(lvm_backend(a)?),
    })
}

/// Runs one command; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32, VolumeError> {
    if let Command::Name { kind, task_id } = &cli.cmd {
        let kind = match kind.as_str() {
            "home" => VolumeKind::Home,
            "root" => VolumeKind::Root,
            "img" | "image" => VolumeKind::Image,
            _ => {
                return Err(VolumeError::BadData {
                    what: "--kind".into(),
                    why: "use home, root or image".into(),
                })
            }
        };
        println!(
            "{}",
            json!({ "name": VolumeName::for_task(kind, task_id)?.as_str() })
        );
        return Ok(0);
    }
    if let Command::Image {
        image_id,
        size,
        from,
        fs,
    } = &cli.cmd
    {
        let b = lvm_backend(&cli.backend)?;
        let from = from.clone();
        let fill = move |dir: &std::path::Path| -> std::io::Result<()> {
            let st = std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", from.display()))
                .arg(dir)
                .status()?;
            if st.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!("cp -a failed: {st}")))
            }
        };
        println!(
            "{}",
            vol_json(&b.ensure_image(image_id, *size, *fs, &fill)?)
        );
        return Ok(0);
    }
    if let Command::Snapshot {
        name,
        base,
        owner,
        size,
    } = &cli.cmd
    {
        let b = lvm_backend(&cli.backend)?;
        let v = b.snapshot_root(
            &VolumeName::new(name)?,
            &Owner::new(owner)?,
            &VolumeName::new(base)?,
            *size,
        )?;
        println!("{}", vol_json(&v));
        return Ok(0);
    }
    let b = open_backend(&cli.backend)?;
    match cli.cmd {
        Command::Create {
            name,
            size,
            owner,
            fs,
        } => {
            let req = CreateRequest {
                name: VolumeName::new(&name)?,
                size,
                fs,
                owner: Owner::new(&owner)?,
            };
            println!("{}", vol_json(&b.create(&req)?));
        }
        Command::Resize { name, size } => {
            let r = b.resize(&VolumeName::new(&name)?, size)?;
            let j = match r {
                Resized::Grown { from, to } => {
                    json!({"resized": "grown", "from": from.0, "to": to.0})
                }
                Resized::Unchanged => json!({"resized": "unchanged"}),
            };
            println!("{j}");
        }
        Command::Mount {
            name,
            target,
            read_only,
            options,
        } => {
            b.mount(
                &VolumeName::new(&name)?,
                &target,
                &MountOptions {
                    read_only,
                    extra: options,
                },
            )?;
            println!("{}", json!({"mounted": target}));
        }
        Command::Unmount { target } => {
            b.unmount(&target)?;
            println!("{}", json!({"unmounted": target}));
        }
        Command::Remove { name } => {
            let removed = b.remove(&VolumeName::new(&name)?)?;
            println!("{}", json!({"removed": removed}));
        }
        Command::List => {
            for v in b.list()? {
                println!("{}", vol_json(&v));
            }
        }
        Command::Capacity => {
            let c = b.capacity()?;
            let thin = c.thin.map(|t| json!({"pool_size": t.pool_size.0, "data_percent": t.data_percent, "metadata_percent": t.metadata_percent}));
            println!(
                "{}",
                json!({"total": c.total.0, "free": c.free.0, "thin": thin})
            );
        }
        Command::Health => {
            let h = b.health()?;
            println!("{}", json!({"ok": h.is_ok(), "problems": h.problems}));
            return Ok(if h.is_ok() { 0 } else { 1 });
        }
        Command::Gc { live } => {
            let is_live = |o: &Owner| live.iter().any(|l| l == o.as_str());
            let r = gc::collect(b.as_ref(), &is_live)?;
            let errors: Vec<String> = r.errors.iter().map(|(n, e)| format!("{n}: {e}")).collect();
            let removed: Vec<&str> = r.removed.iter().map(|n| n.as_str()).collect();
            let busy: Vec<&str> = r.skipped_busy.iter().map(|n| n.as_str()).collect();
            println!(
                "{}",
                json!({"removed": removed, "busy": busy, "errors": errors})
            );
            return Ok(if errors.is_empty() { 0 } else { 1 });
        }
        Command::Name { .. } | Command::Image { .. } | Command::Snapshot { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(0)
}
