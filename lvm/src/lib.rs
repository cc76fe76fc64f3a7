//! Container volumes for berth: a sized `/home` per task and a root filesystem per container,
//! behind one trait with two backends.
//!
//! # Layout
//! - [`name`]: task ids -> volume names (the one place names are sanitized), owners.
//! - [`size`]: the [`Bytes`] newtype and parsing of `10G` / `512MiB`.
//! - [`volume`]: the [`Backend`] trait, requests and the volume/capacity/health types.
//! - [`exec`]: running external tools (lvm, mkfs, mount) with a deadline and no inherited fds.
//! - [`dm`]: device-mapper's status ioctl (a thin pool's fill level without a process).
//! - [`fs`]: mkfs, online grow, mount and unmount of ext4/xfs.
//! - [`lock`]: per-volume `flock` locks so two processes never build one volume at once.
//! - [`crash`]: named steps where a test can make the process abort (crash-safety tests).
//! - [`loopfile`]: sparse file + loop device backend (hosts without LVM, the demo).
//! - [`lvm`]: LVM2 backend: linear and thin LVs, owner tags, image base + thin snapshot roots.
//! - [`gc`]: garbage collection of incomplete and ownerless volumes.
//! - [`resource`]: the Mesos resource names berth sells (shared by agent and executor).
//! - [`cli`]: the `berth-vol` command line (thin `src/bin/berth-vol.rs`).

pub mod cli;
pub mod crash;
pub mod dm;
pub mod exec;
pub mod fs;
pub mod gc;
pub mod lock;
pub mod loopfile;
pub mod lvm;
pub mod name;
pub mod resource;
pub mod size;
pub mod volume;

pub use name::{Owner, VolumeKind, VolumeName};
pub use size::Bytes;
pub use volume::{
    Backend, Capacity, CreateRequest, Filesystem, Health, MountOptions, Resized, Volume,
    VolumeError, VolumeState,
};
