//! Typed parsing of `lvm fullreport --reportformat json --units b --nosuffix`.
//!
//! Only stdout is parsed; stderr (warnings such as leaked descriptors or overprovisioned
//! pools) is never data (csi-driver-lvm issue 123). All values arrive as strings; sizes are
//! byte counts, percentages decimals, empty strings mean "not applicable".

use serde::Deserialize;

use crate::size::Bytes;
use crate::volume::VolumeError;

#[derive(Debug, Deserialize)]
struct RawReport {
    report: Vec<RawVgReport>,
}

#[derive(Debug, Deserialize)]
struct RawVgReport {
    #[serde(default)]
    vg: Vec<RawVg>,
    #[serde(default)]
    lv: Vec<RawLv>,
}

#[derive(Debug, Deserialize)]
struct RawVg {
    vg_name: String,
    vg_size: String,
    vg_free: String,
    vg_extent_size: String,
    vg_attr: String,
}

#[derive(Debug, Deserialize)]
struct RawLv {
    lv_name: String,
    lv_path: String,
    lv_size: String,
    lv_attr: String,
    lv_tags: String,
    pool_lv: String,
    origin: String,
    data_percent: String,
    metadata_percent: String,
    #[serde(default)]
    lv_health_status: String,
}

/// The state of every VG lvm reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub vgs: Vec<Vg>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vg {
    pub name: String,
    pub size: Bytes,
    pub free: Bytes,
    pub extent_size: Bytes,
    /// A PV is missing (vg_attr 4th character `p`).
    pub partial: bool,
    pub lvs: Vec<Lv>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lv {
    pub name: String,
    /// `/dev/<vg>/<lv>`; empty for hidden and pool LVs.
    pub path: String,
    pub size: Bytes,
    pub attr: LvAttr,
    pub tags: Vec<String>,
    pub pool: Option<String>,
    pub origin: Option<String>,
    pub data_percent: Option<f64>,
    pub metadata_percent: Option<f64>,
    pub health: String,
}

impl Lv {
    pub fn has_tag(&self, t: &str) -> bool {
        self.tags.iter().any(|x| x == t)
    }

    /// Value of the first `key=value` tag with this key.
    pub fn tag_value(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
    }
}

/// The ten `lv_attr` characters that matter to berth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LvAttr {
    /// `-` linear, `t` thin pool, `V` thin volume, `s` snapshot, ...
    pub kind: char,
    pub writable: bool,
    pub active: bool,
    /// The device is open (mounted or in use).
    pub open: bool,
}

impl std::str::FromStr for LvAttr {
    type Err = VolumeError;
    fn from_str(s: &str) -> Result<Self, VolumeError> {
        let c: Vec<char> = s.chars().collect();
        if c.len() < 6 {
            return Err(bad(format!("lv_attr {s:?} is shorter than 6 characters")));
        }
        Ok(LvAttr {
            kind: c[0],
            writable: c[1] == 'w',
            active: c[4] == 'a',
            open: c[5] == 'o',
        })
    }
}

fn bad(why: String) -> VolumeError {
    VolumeError::BadData {
        what: "lvm fullreport".into(),
        why,
    }
}

fn bytes(field: &str, v: &str) -> Result<Bytes, VolumeError> {
    v.parse::<u64>()
        .map(Bytes)
        .map_err(|_| bad(format!("{field} {v:?} is not a byte count")))
}

fn percent(field: &str, v: &str) -> Result<Option<f64>, VolumeError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<f64>()
        .map(Some)
        .map_err(|_| bad(format!("{field} {v:?} is not a percentage")))
}

fn opt(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

/// Parses the stdout of `lvm fullreport --reportformat json --units b --nosuffix`.
pub fn parse(stdout: &[u8]) -> Result<Report, VolumeError> {
    let raw: RawReport = serde_json::from_slice(stdout).map_err(|e| bad(e.to_string()))?;
    let mut vgs = Vec::new();
    for r in raw.report {
        let Some(vg) = r.vg.into_iter().next() else {
            continue;
        };
        let mut lvs = Vec::new();
        for lv in r.lv {
            lvs.push(Lv {
                size: bytes("lv_size", &lv.lv_size)?,
                attr: lv.lv_attr.parse()?,
                tags: lv
                    .lv_tags
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
                pool: opt(lv.pool_lv),
                origin: opt(lv.origin),
                data_percent: percent("data_percent", &lv.data_percent)?,
                metadata_percent: percent("metadata_percent", &lv.metadata_percent)?,
                health: lv.lv_health_status,
                name: lv.lv_name,
                path: lv.lv_path,
            });
        }
        vgs.push(Vg {
            size: bytes("vg_size", &vg.vg_size)?,
            free: bytes("vg_free", &vg.vg_free)?,
            extent_size: bytes("vg_extent_size", &vg.vg_extent_size)?,
            partial: vg.vg_attr.chars().nth(3) == Some('p'),
            name: vg.vg_name,
            lvs,
        });
    }
    Ok(Report { vgs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn parses_linear_thin_snapshot_and_inactive() {
        let r = parse(&fixture("fullreport-thin-inactive.json")).unwrap();
        assert_eq!(r.vgs.len(), 1);
        let vg = &r.vgs[0];
        assert_eq!(vg.name, "capvg");
        assert_eq!(vg.size, Bytes(2_139_095_040));
        assert_eq!(vg.extent_size, Bytes(4 * 1024 * 1024));
        assert!(!vg.partial);
        let home = vg
            .lvs
            .iter()
            .find(|l| l.name == "berth-home-a-1234abcd")
            .unwrap();
        assert_eq!(home.size, Bytes(64 << 20));
        assert!(home.has_tag("berth") && home.has_tag("berth.incomplete"));
        assert_eq!(home.tag_value("berth.owner"), Some("task-a.1"));
        assert_eq!(home.tag_value("berth.fs"), Some("ext4"));
        assert_eq!(
            home.attr,
            LvAttr {
                kind: '-',
                writable: true,
                active: true,
                open: false
            }
        );
        assert_eq!(home.path, "/dev/capvg/berth-home-a-1234abcd");
        let other = vg.lvs.iter().find(|l| l.name == "other").unwrap();
        assert!(!other.attr.active, "inactive LV");
        assert!(other.tags.is_empty());
        let pool = vg.lvs.iter().find(|l| l.name == "pool").unwrap();
        assert_eq!(pool.attr.kind, 't');
        assert!(pool.metadata_percent.is_some() && pool.data_percent.is_some());
        let snap = vg.lvs.iter().find(|l| l.name == "snap1").unwrap();
        assert_eq!(snap.origin.as_deref(), Some("berth-home-b-1234abcd"));
        assert_eq!(snap.pool.as_deref(), Some("pool"));
        let thin = vg
            .lvs
            .iter()
            .find(|l| l.name == "berth-home-b-1234abcd")
            .unwrap();
        assert_eq!(thin.tag_value("berth.owner"), Some("task-b:x"));
    }

    #[test]
    fn warnings_on_stderr_do_not_disturb_stdout() {
        let stderr = String::from_utf8(fixture("fullreport-fd-warnings.stderr")).unwrap();
        assert!(stderr.contains("leaked on lvm invocation"));
        let r = parse(&fixture("fullreport-fd-warnings.json")).unwrap();
        assert_eq!(r.vgs[0].name, "capvg");
        // stderr is not JSON and must never be fed to the parser.
        assert!(parse(stderr.as_bytes()).is_err());
    }

    #[test]
    fn parses_pool_usage_and_read_only_origin() {
        let r = parse(&fixture("fullreport-pool-80pct.json")).unwrap();
        let pool = r.vgs[0].lvs.iter().find(|l| l.name == "pool").unwrap();
        assert_eq!(pool.data_percent, Some(79.88));
        assert!(pool.metadata_percent.unwrap() > 10.0);
        let r = parse(&fixture("fullreport-snapshots-readonly.json")).unwrap();
        let base = r.vgs[0]
            .lvs
            .iter()
            .find(|l| l.name == "berth-home-b-1234abcd")
            .unwrap();
        assert!(!base.attr.writable);
        let snap2 = r.vgs[0].lvs.iter().find(|l| l.name == "snap2").unwrap();
        assert_eq!(snap2.size, Bytes(256 << 20));
        assert!(snap2.attr.writable);
    }

    #[test]
    fn rejects_malformed_values() {
        let bad_size = br#"{"report":[{"vg":[{"vg_name":"v","vg_size":"1.5g","vg_free":"0","vg_extent_size":"4","vg_attr":"wz--n-"}]}]}"#;
        assert!(parse(bad_size).is_err());
        let bad_attr = br#"{"report":[{"vg":[{"vg_name":"v","vg_size":"1","vg_free":"0","vg_extent_size":"4","vg_attr":"wz--n-"}],
            "lv":[{"lv_name":"a","lv_path":"","lv_size":"1","lv_attr":"-w","lv_tags":"","pool_lv":"","origin":"","data_percent":"","metadata_percent":""}]}]}"#;
        assert!(parse(bad_attr).is_err());
        let empty = br#"{"report":[]}"#;
        assert_eq!(parse(empty).unwrap().vgs.len(), 0);
        assert!(parse(b"").is_err());
    }
}
