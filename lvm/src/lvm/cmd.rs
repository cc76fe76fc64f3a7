//! Command lines for the `lvm` tool, built as data so unit tests check every argument.
//! Names reaching these functions are [`VolumeName`]s/[`Owner`]s (validated) or come from
//! the operator's configuration (checked in [`super::LvmConfig::validate`]).

use crate::exec::Cmd;
use crate::name::{Owner, VolumeName};
use crate::size::Bytes;
use crate::volume::Filesystem;

pub const TAG_BERTH: &str = "berth";
pub const TAG_INCOMPLETE: &str = "berth.incomplete";
pub const TAG_RESIZING: &str = "berth.resizing";
pub const TAG_IMAGE: &str = "berth.image";
pub const TAG_OWNER: &str = "berth.owner";
pub const TAG_FS: &str = "berth.fs";

/// How to call `lvm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvmTool {
    pub program: String,
    /// Set `DM_DISABLE_UDEV=1` and `--noudevsync`: for hosts or containers without udev,
    /// where waiting for udev would hang.
    pub no_udev: bool,
    /// Extra `--config` settings for every call (operator configuration, e.g.
    /// `activation{monitoring=0}` or a `devices{filter=...}`).
    pub config: Option<String>,
}

/// Settings a thin snapshot's `lvcreate` adds to the operator's: snapshotting an active
/// origin suspends it, and around that lvm unregisters the thin pool from dmeventd and then
/// waits for it to be registered again (about 1 s of a 2 s call under emulation). The pool's
/// registration is left as its activation made it; thin LVs themselves are not monitored.
const SNAPSHOT_CONFIG: &str = "activation/monitoring=0";

impl LvmTool {
    pub fn cmd(&self, sub: &str) -> Cmd {
        self.cmd_with(sub, None)
    }

    /// [`Self::cmd`] with `extra` settings after the operator's (`--config` is given once).
    fn cmd_with(&self, sub: &str, extra: Option<&str>) -> Cmd {
        let mut c = Cmd::new(&self.program)
            .arg(sub)
            .env("LVM_SUPPRESS_FD_WARNINGS", "1");
        if self.no_udev {
            c = c.env("DM_DISABLE_UDEV", "1");
        }
        let conf = match (&self.config, extra) {
            (Some(op), Some(x)) => Some(format!("{op} {x}")),
            (Some(op), None) => Some(op.clone()),
            (None, x) => x.map(String::from),
        };
        if let Some(conf) = conf {
            c = c.args(["--config".to_string(), conf]);
        }
        c
    }

    fn changing(&self, sub: &str) -> Cmd {
        self.changing_with(sub, None)
    }

    fn changing_with(&self, sub: &str, extra: Option<&str>) -> Cmd {
        let c = self.cmd_with(sub, extra);
        if self.no_udev {
            c.arg("--noudevsync")
        } else {
            c
        }
    }

    pub fn fullreport(&self, vg: &str) -> Cmd {
        self.cmd("fullreport")
            .args(["--reportformat", "json", "--units", "b", "--nosuffix"])
            .arg(vg)
    }

    pub fn version(&self) -> Cmd {
        self.cmd("version")
    }

    fn tags(c: Cmd, owner: &Owner, fs: Filesystem, extra: &[&str]) -> Cmd {
        Self::tags_of(c, owner, fs, true, extra)
    }

    fn tags_of(c: Cmd, owner: &Owner, fs: Filesystem, incomplete: bool, extra: &[&str]) -> Cmd {
        let mut c = c
            .args(["--addtag", TAG_BERTH])
            .args(["--addtag".to_string(), format!("{TAG_OWNER}={owner}")])
            .args(["--addtag".to_string(), format!("{TAG_FS}={fs}")]);
        if incomplete {
            c = c.args(["--addtag", TAG_INCOMPLETE]);
        }
        for t in extra {
            c = c.args(["--addtag", t]);
        }
        c
    }

    /// A linear LV, tagged incomplete until mkfs is done.
    pub fn create_linear(
        &self,
        vg: &str,
        name: &VolumeName,
        size: Bytes,
        owner: &Owner,
        fs: Filesystem,
    ) -> Cmd {
        let c = self
            .changing("lvcreate")
            .args([
                "--yes",
                "--wipesignatures",
                "y",
                "--zero",
                "y",
                "--activate",
                "y",
                "--name",
                name.as_str(),
            ])
            .args(["--size".to_string(), format!("{}b", size.0)]);
        Self::tags(c, owner, fs, &[]).arg(vg)
    }

    /// A thin LV in `pool`, tagged incomplete until mkfs (or the image fill) is done.
    #[allow(clippy::too_many_arguments)]
    pub fn create_thin(
        &self,
        vg: &str,
        pool: &str,
        name: &VolumeName,
        size: Bytes,
        owner: &Owner,
        fs: Filesystem,
        image: bool,
    ) -> Cmd {
        let c = self
            .changing("lvcreate")
            .args(["--yes", "--activate", "y", "--name", name.as_str()])
            .args(["--virtualsize".to_string(), format!("{}b", size.0)])
            .args(["--thinpool", pool]);
        Self::tags(c, owner, fs, if image { &[TAG_IMAGE] } else { &[] }).arg(vg)
    }

    /// A writable, activated thin snapshot of `base` (thin snapshots skip activation by
    /// default: `--setactivationskip n` makes it activate now and at boot), tagged in the
    /// same call, without dmeventd's round trip ([`SNAPSHOT_CONFIG`]). `incomplete` when
    /// more is to be done before it can be used (growing it).
    pub fn create_snapshot(
        &self,
        vg: &str,
        base: &VolumeName,
        name: &VolumeName,
        owner: &Owner,
        fs: Filesystem,
        incomplete: bool,
    ) -> Cmd {
        let c = self.changing_with("lvcreate", Some(SNAPSHOT_CONFIG)).args([
            "--yes",
            "--snapshot",
            "--setactivationskip",
            "n",
            "--permission",
            "rw",
            "--activate",
            "y",
            "--name",
            name.as_str(),
        ]);
        Self::tags_of(c, owner, fs, incomplete, &[]).arg(format!("{vg}/{base}"))
    }

    pub fn add_tag(&self, vg: &str, name: &VolumeName, tag: &str) -> Cmd {
        self.changing("lvchange")
            .args(["--addtag", tag])
            .arg(format!("{vg}/{name}"))
    }

    pub fn del_tag(&self, vg: &str, name: &VolumeName, tag: &str) -> Cmd {
        self.changing("lvchange")
            .args(["--deltag", tag])
            .arg(format!("{vg}/{name}"))
    }

    pub fn read_only(&self, vg: &str, name: &VolumeName) -> Cmd {
        self.changing("lvchange")
            .args(["--permission", "r"])
            .arg(format!("{vg}/{name}"))
    }

    pub fn activate(&self, vg: &str, name: &VolumeName) -> Cmd {
        self.changing("lvchange")
            .args(["--activate", "y", "--ignoreactivationskip"])
            .arg(format!("{vg}/{name}"))
    }

    pub fn extend(&self, vg: &str, name: &VolumeName, size: Bytes) -> Cmd {
        self.changing("lvextend")
            .args(["--size".to_string(), format!("{}b", size.0)])
            .arg(format!("{vg}/{name}"))
    }

    pub fn remove(&self, vg: &str, name: &VolumeName) -> Cmd {
        self.changing("lvremove")
            .arg("--yes")
            .arg(format!("{vg}/{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool() -> LvmTool {
        LvmTool {
            program: "lvm".into(),
            no_udev: false,
            config: None,
        }
    }

    #[test]
    fn fullreport_is_one_json_call_in_bytes() {
        let c = tool().fullreport("vg0");
        assert_eq!(
            c.to_string(),
            "lvm fullreport --reportformat json --units b --nosuffix vg0"
        );
        assert_eq!(
            c.env,
            vec![("LVM_SUPPRESS_FD_WARNINGS".to_string(), "1".to_string())]
        );
    }

    #[test]
    fn create_commands_carry_owner_and_incomplete_tags() {
        let n = VolumeName::new("berth-home-t-0000abcd").unwrap();
        let o = Owner::new("web.1").unwrap();
        let c = tool().create_linear("vg0", &n, Bytes(1 << 30), &o, Filesystem::Ext4);
        assert_eq!(
            c.to_string(),
            "lvm lvcreate --yes --wipesignatures y --zero y --activate y --name berth-home-t-0000abcd \
             --size 1073741824b --addtag berth --addtag berth.owner=web.1 --addtag berth.fs=ext4 \
             --addtag berth.incomplete vg0"
        );
        let t = tool().create_thin("vg0", "pool", &n, Bytes(4096), &o, Filesystem::Xfs, true);
        assert_eq!(
            t.to_string(),
            "lvm lvcreate --yes --activate y --name berth-home-t-0000abcd --virtualsize 4096b --thinpool pool \
             --addtag berth --addtag berth.owner=web.1 --addtag berth.fs=xfs --addtag berth.incomplete \
             --addtag berth.image vg0"
        );
        let b = VolumeName::new("berth-img-x-1").unwrap();
        let s = tool().create_snapshot("vg0", &b, &n, &o, Filesystem::Ext4, true);
        assert!(s.to_string().starts_with(
            "lvm lvcreate --config activation/monitoring=0 --yes --snapshot --setactivationskip n --permission rw"
        ));
        assert!(s.to_string().contains("--addtag berth.incomplete"));
        assert_eq!(s.args.last().unwrap(), "vg0/berth-img-x-1");
        // At the base's size it is complete when lvcreate returns.
        let s = tool().create_snapshot("vg0", &b, &n, &o, Filesystem::Ext4, false);
        assert!(!s.to_string().contains("incomplete"), "{s}");
        assert!(s.to_string().contains("--addtag berth.owner=web.1"));
    }

    #[test]
    fn no_udev_mode_sets_env_and_flag() {
        let t = LvmTool {
            program: "/sbin/lvm".into(),
            no_udev: true,
            config: Some("activation{monitoring=0}".into()),
        };
        let n = VolumeName::new("v").unwrap();
        let c = t.remove("vg0", &n);
        assert_eq!(
            c.to_string(),
            "/sbin/lvm lvremove --config activation{monitoring=0} --noudevsync --yes vg0/v"
        );
        assert!(c
            .env
            .contains(&("DM_DISABLE_UDEV".to_string(), "1".to_string())));
        assert_eq!(
            t.extend("vg0", &n, Bytes(8 << 20)).to_string(),
            "/sbin/lvm lvextend --config activation{monitoring=0} --noudevsync --size 8388608b vg0/v"
        );
        let b = VolumeName::new("b").unwrap();
        let o = Owner::new("o").unwrap();
        assert!(t
            .create_snapshot("vg0", &b, &n, &o, Filesystem::Ext4, false)
            .to_string()
            .starts_with(
                "/sbin/lvm lvcreate --config activation{monitoring=0} activation/monitoring=0 --noudevsync --yes --snapshot"
            ));
        assert_eq!(
            t.del_tag("vg0", &n, TAG_INCOMPLETE).to_string(),
            "/sbin/lvm lvchange --config activation{monitoring=0} --noudevsync --deltag berth.incomplete vg0/v"
        );
    }
}
