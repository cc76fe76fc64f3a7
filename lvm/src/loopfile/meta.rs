//! The small metadata file next to each loopfile volume: owner, filesystem, size and state.
//! Written atomically (temp file, fsync, rename, fsync of the directory), so a reader sees
//! either the old or the new content, never half of it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::name::Owner;
use crate::size::Bytes;
use crate::volume::{Filesystem, VolumeError, VolumeState};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub owner: String,
    pub fs: String,
    pub size: u64,
    /// `complete`, `incomplete` or `resizing`.
    pub state: String,
}

impl Meta {
    pub fn new(owner: &Owner, fs: Filesystem, size: Bytes, state: VolumeState) -> Self {
        Meta {
            owner: owner.to_string(),
            fs: fs.to_string(),
            size: size.0,
            state: state_str(state).into(),
        }
    }

    pub fn state(&self) -> Result<VolumeState, VolumeError> {
        match self.state.as_str() {
            "complete" => Ok(VolumeState::Complete),
            "incomplete" => Ok(VolumeState::Incomplete),
            "resizing" => Ok(VolumeState::Resizing),
            other => Err(VolumeError::BadData {
                what: "loopfile metadata".into(),
                why: format!("state {other:?}"),
            }),
        }
    }

    pub fn owner(&self) -> Result<Owner, VolumeError> {
        Ok(Owner::new(&self.owner)?)
    }

    pub fn fs(&self) -> Result<Filesystem, VolumeError> {
        self.fs.parse()
    }
}

pub fn state_str(s: VolumeState) -> &'static str {
    match s {
        VolumeState::Complete => "complete",
        VolumeState::Incomplete => "incomplete",
        VolumeState::Resizing => "resizing",
    }
}

pub fn read(path: &Path) -> Result<Option<Meta>, VolumeError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| VolumeError::BadData {
                what: path.display().to_string(),
                why: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VolumeError::io("reading", path, e)),
    }
}

pub fn write_atomic(path: &Path, meta: &Meta) -> Result<(), VolumeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{file_name}.tmp"));
    let body = serde_json::to_vec_pretty(meta).map_err(|e| VolumeError::BadData {
        what: "loopfile metadata".into(),
        why: e.to_string(),
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| VolumeError::io("creating", &tmp, e))?;
    f.write_all(&body)
        .map_err(|e| VolumeError::io("writing", &tmp, e))?;
    f.sync_all()
        .map_err(|e| VolumeError::io("syncing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| VolumeError::io("renaming into", path, e))?;
    let d = std::fs::File::open(dir).map_err(|e| VolumeError::io("opening", dir, e))?;
    d.sync_all()
        .map_err(|e| VolumeError::io("syncing", dir, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.json");
        assert_eq!(read(&p).unwrap(), None);
        let m = Meta::new(
            &Owner::new("t1").unwrap(),
            Filesystem::Xfs,
            Bytes(42),
            VolumeState::Incomplete,
        );
        write_atomic(&p, &m).unwrap();
        assert_eq!(read(&p).unwrap(), Some(m.clone()));
        assert_eq!(m.state().unwrap(), VolumeState::Incomplete);
        std::fs::write(
            &p,
            r#"{"owner":"a","fs":"ext4","size":1,"state":"complete","x":1}"#,
        )
        .unwrap();
        assert!(read(&p).is_err());
        assert!(!dir.path().join(".v.json.tmp").exists());
    }
}
