//! Backend `lvm` (production): LVs in a configured volume group, linear or thin from a
//! configured pool, owner and state in LV tags, and container roots as thin snapshots of a
//! read-only base volume per image ([`image`]).
//!
//! State always comes from one `lvm fullreport` call ([`report`]); commands are built in
//! [`cmd`] and run through a [`Runner`] with a deadline. Tags on each LV:
//! `berth`, `berth.owner=<owner>`, `berth.fs=<fs>`, and `berth.incomplete` from lvcreate until
//! mkfs is done (`berth.resizing` during a grow, `berth.image` on image bases).

pub mod backend;
pub mod cmd;
pub mod image;
pub mod ready;
pub mod report;

#[cfg(test)]
mod fake_tests;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::crash::CrashPoints;
use crate::exec::{Runner, SystemRunner};
use crate::name::{Owner, VolumeName};
use crate::size::Bytes;
use crate::volume::{Filesystem, Volume, VolumeError, VolumeState};
use cmd::LvmTool;
use report::{Lv, Vg};

/// How `/home` volumes are allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Fully allocated LVs: the raw disk's performance, no overcommit.
    Linear,
    /// Thin LVs from the pool: allocated on write.
    Thin,
}

/// Operator configuration of the lvm backend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LvmConfig {
    /// The volume group berth may allocate in (made by the operator).
    pub vg: String,
    /// The thin pool in `vg` (made by the operator) for thin homes, image bases and roots.
    #[serde(default)]
    pub thin_pool: Option<String>,
    #[serde(default = "default_layout")]
    pub home_layout: Layout,
    /// New volumes are refused when the VG's free space (linear) or the pool's free data or
    /// metadata (thin) would fall below this percentage.
    #[serde(default = "default_floor")]
    pub free_floor_percent: f64,
    #[serde(default = "default_lock_dir")]
    pub lock_dir: PathBuf,
    #[serde(default = "default_program")]
    pub lvm_program: String,
    /// Deadline for each `lvm` call; the child is killed after it.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Don't wait for udev (`DM_DISABLE_UDEV=1 --noudevsync`). Default: when
    /// `/run/udev/control` does not exist.
    #[serde(default)]
    pub no_udev: Option<bool>,
    /// Extra settings passed as `--config` to every `lvm` call.
    #[serde(default)]
    pub lvm_config: Option<String>,
}

fn default_layout() -> Layout {
    Layout::Linear
}
fn default_floor() -> f64 {
    10.0
}
fn default_lock_dir() -> PathBuf {
    PathBuf::from("/run/lock/berth-lvm")
}
fn default_program() -> String {
    "lvm".into()
}
fn default_timeout() -> u64 {
    120
}

impl LvmConfig {
    pub fn new(vg: &str) -> Self {
        LvmConfig {
            vg: vg.into(),
            thin_pool: None,
            home_layout: default_layout(),
            free_floor_percent: default_floor(),
            lock_dir: default_lock_dir(),
            lvm_program: default_program(),
            timeout_secs: default_timeout(),
            no_udev: None,
            lvm_config: None,
        }
    }

    /// Checks names that will reach command lines.
    pub fn validate(&self) -> Result<(), VolumeError> {
        VolumeName::new(&self.vg)?;
        if let Some(p) = &self.thin_pool {
            VolumeName::new(p)?;
        }
        if self.home_layout == Layout::Thin && self.thin_pool.is_none() {
            return Err(VolumeError::BadData {
                what: "lvm config".into(),
                why: "home_layout thin needs thin_pool".into(),
            });
        }
        if !(0.0..100.0).contains(&self.free_floor_percent) {
            return Err(VolumeError::BadData {
                what: "lvm config".into(),
                why: "free_floor_percent must be in 0..100".into(),
            });
        }
        Ok(())
    }
}

pub struct LvmBackend {
    pub cfg: LvmConfig,
    pub tool: LvmTool,
    pub run: Box<dyn Runner>,
    pub mountinfo: PathBuf,
    pub crash: CrashPoints,
}

impl LvmBackend {
    pub fn new(cfg: LvmConfig) -> Result<Self, VolumeError> {
        let run = Box::new(SystemRunner {
            timeout: Duration::from_secs(cfg.timeout_secs),
        });
        Self::with_runner(cfg, run)
    }

    pub fn with_runner(cfg: LvmConfig, run: Box<dyn Runner>) -> Result<Self, VolumeError> {
        cfg.validate()?;
        let no_udev = cfg
            .no_udev
            .unwrap_or_else(|| !std::path::Path::new("/run/udev/control").exists());
        Ok(LvmBackend {
            tool: LvmTool {
                program: cfg.lvm_program.clone(),
                no_udev,
                config: cfg.lvm_config.clone(),
            },
            cfg,
            run,
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
            crash: CrashPoints::default(),
        })
    }

    /// The VG as `lvm fullreport` sees it now.
    pub fn vg(&self) -> Result<Vg, VolumeError> {
        let out = self.run.check(&self.tool.fullreport(&self.cfg.vg))?;
        let rep = report::parse(&out.stdout)?;
        rep.vgs
            .into_iter()
            .find(|v| v.name == self.cfg.vg)
            .ok_or_else(|| VolumeError::BadData {
                what: "lvm fullreport".into(),
                why: format!("volume group {} not reported", self.cfg.vg),
            })
    }

    fn pool<'a>(&self, vg: &'a Vg) -> Result<&'a Lv, VolumeError> {
        let name = self
            .cfg
            .thin_pool
            .as_deref()
            .ok_or(VolumeError::Unsupported {
                backend: "lvm",
                what: "thin volumes without thin_pool",
            })?;
        vg.lvs
            .iter()
            .find(|l| l.name == name)
            .ok_or_else(|| VolumeError::BadData {
                what: "lvm fullreport".into(),
                why: format!("thin pool {}/{name} not found", self.cfg.vg),
            })
    }

    pub(crate) fn device(&self, name: &VolumeName) -> PathBuf {
        PathBuf::from(format!("/dev/{}/{}", self.cfg.vg, name))
    }

    /// Refuses a new linear volume of `size` that would take the VG below the floor.
    pub(crate) fn check_linear_floor(
        &self,
        vg: &Vg,
        name: &VolumeName,
        size: Bytes,
    ) -> Result<(), VolumeError> {
        let floor = (vg.size.0 as f64 * self.cfg.free_floor_percent / 100.0) as u64;
        let after = vg.free.0.checked_sub(size.0);
        match after {
            Some(left) if left >= floor => Ok(()),
            _ => Err(VolumeError::BelowFloor {
                name: name.clone(),
                size,
                why: format!(
                    "volume group {} has {} free of {}; the free-space floor is {}% ({})",
                    vg.name,
                    vg.free,
                    vg.size,
                    self.cfg.free_floor_percent,
                    Bytes(floor)
                ),
            }),
        }
    }

    /// Refuses a new thin volume when the pool's free data or metadata is under the floor.
    pub(crate) fn check_thin_floor(
        &self,
        vg: &Vg,
        name: &VolumeName,
        size: Bytes,
    ) -> Result<(), VolumeError> {
        let pool = self.pool(vg)?;
        let data = pool.data_percent.unwrap_or(0.0);
        let meta = pool.metadata_percent.unwrap_or(0.0);
        self.check_pool_use(&pool.name, data, meta, name, size)
    }

    /// [`Self::check_thin_floor`] with the pool's use in percent.
    pub(crate) fn check_pool_use(
        &self,
        pool: &str,
        data: f64,
        meta: f64,
        name: &VolumeName,
        size: Bytes,
    ) -> Result<(), VolumeError> {
        let limit = 100.0 - self.cfg.free_floor_percent;
        if data >= limit || meta >= limit {
            return Err(VolumeError::BelowFloor {
                name: name.clone(),
                size,
                why: format!(
                    "thin pool {}/{pool} is {data:.2}% full (metadata {meta:.2}%); the free-space floor is {}%",
                    self.cfg.vg, self.cfg.free_floor_percent
                ),
            });
        }
        Ok(())
    }

    /// The berth volume an LV is, or `None` for LVs berth did not make.
    pub(crate) fn to_volume(lv: &Lv) -> Option<Volume> {
        if !lv.has_tag(cmd::TAG_BERTH) {
            return None;
        }
        let name = VolumeName::new(&lv.name).ok()?;
        let owner = lv
            .tag_value(cmd::TAG_OWNER)
            .and_then(|o| Owner::new(o).ok());
        let fs = lv
            .tag_value(cmd::TAG_FS)
            .and_then(|f| f.parse::<Filesystem>().ok());
        let (owner, fs, state) = match (owner, fs) {
            (Some(o), Some(f)) => {
                let state = if lv.has_tag(cmd::TAG_INCOMPLETE) {
                    VolumeState::Incomplete
                } else if lv.has_tag(cmd::TAG_RESIZING) {
                    VolumeState::Resizing
                } else {
                    VolumeState::Complete
                };
                (o, f, state)
            }
            // A berth LV with damaged tags: show it as incomplete so GC takes it.
            (o, f) => (
                o.unwrap_or_else(|| Owner::new("unknown").expect("valid owner")),
                f.unwrap_or(Filesystem::Ext4),
                VolumeState::Incomplete,
            ),
        };
        let layout = if lv.has_tag(cmd::TAG_IMAGE) {
            "image"
        } else if lv.origin.is_some() {
            "snapshot"
        } else if lv.pool.is_some() {
            "thin"
        } else {
            "linear"
        };
        Some(Volume {
            name,
            owner,
            size: lv.size,
            fs,
            state,
            device: PathBuf::from(&lv.path),
            layout: layout.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_strict() {
        let c: LvmConfig =
            serde_json::from_str(r#"{"vg":"vg0","thin_pool":"pool","home_layout":"thin"}"#)
                .unwrap();
        assert_eq!(c.free_floor_percent, 10.0);
        c.validate().unwrap();
        assert!(serde_json::from_str::<LvmConfig>(r#"{"vg":"vg0","pool":"x"}"#).is_err());
        let mut bad = LvmConfig::new("-vg");
        assert!(bad.validate().is_err());
        bad.vg = "vg0".into();
        bad.home_layout = Layout::Thin;
        assert!(bad.validate().is_err(), "thin without pool");
    }

    #[test]
    fn lvs_map_to_volumes_by_tags() {
        let raw = std::fs::read(format!(
            "{}/tests/fixtures/fullreport-thin-inactive.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let rep = report::parse(&raw).unwrap();
        let vols: Vec<Volume> = rep.vgs[0]
            .lvs
            .iter()
            .filter_map(LvmBackend::to_volume)
            .collect();
        let names: Vec<&str> = vols.iter().map(|v| v.name.as_str()).collect();
        // "other" and "pool" have no berth tag; snap1 has `berth` but no owner: incomplete.
        assert_eq!(
            names,
            ["berth-home-a-1234abcd", "berth-home-b-1234abcd", "snap1"]
        );
        assert_eq!(vols[0].state, VolumeState::Incomplete);
        assert_eq!(vols[0].layout, "linear");
        assert_eq!(vols[1].state, VolumeState::Complete);
        assert_eq!(vols[1].fs, Filesystem::Xfs);
        assert_eq!(vols[1].layout, "thin");
        assert_eq!(vols[2].state, VolumeState::Incomplete);
        assert_eq!(vols[2].owner.as_str(), "unknown");
        assert_eq!(vols[2].layout, "snapshot");
    }
}
