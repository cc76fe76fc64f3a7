//! Loop devices for a backing file: attach with `losetup`, find by backing file in sysfs,
//! refresh capacity after growing the file, detach.
//!
//! Detaching a loop device that is mounted makes the kernel clear it when the last user goes
//! away (LO_FLAGS_AUTOCLEAR); `mount` detaches right after mounting, so unmounting (or a
//! crash followed by an unmount) leaves no loop device behind.

use std::path::{Path, PathBuf};

use crate::exec::{Cmd, Runner};
use crate::volume::VolumeError;

pub fn attach_cmd(file: &Path) -> Cmd {
    Cmd::new("losetup")
        .args(["--find", "--show", "--nooverlap"])
        .arg(file.display().to_string())
}

/// Attaches `file` to a free loop device (or returns the one already attached) and returns it.
pub fn attach(run: &dyn Runner, file: &Path) -> Result<PathBuf, VolumeError> {
    let out = run.check(&attach_cmd(file))?;
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !dev.starts_with("/dev/loop") {
        return Err(VolumeError::BadData {
            what: "losetup --show".into(),
            why: format!("printed {dev:?}"),
        });
    }
    Ok(PathBuf::from(dev))
}

pub fn detach(run: &dyn Runner, dev: &Path) -> Result<(), VolumeError> {
    let out = run.run(&Cmd::new("losetup").arg("-d").arg(dev.display().to_string()))?;
    // Already gone (autocleared between our look and the detach) is fine.
    if out.success() || out.stderr_text().contains("No such device") {
        Ok(())
    } else {
        Err(crate::exec::ExecError::Failed {
            cmd: format!("losetup -d {}", dev.display()),
            code: out.code,
            stderr: out.stderr_text(),
        }
        .into())
    }
}

/// Tells the loop driver to re-read the backing file's size.
pub fn refresh_capacity(run: &dyn Runner, dev: &Path) -> Result<(), VolumeError> {
    run.check(
        &Cmd::new("losetup")
            .arg("--set-capacity")
            .arg(dev.display().to_string()),
    )?;
    Ok(())
}

/// Loop devices whose backing file is `file`, from `<sys_block>/loop*/loop/backing_file`.
pub fn devices_for(sys_block: &Path, file: &Path) -> Vec<PathBuf> {
    let want = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    let Ok(rd) = std::fs::read_dir(sys_block) else {
        return Vec::new();
    };
    let mut devs: Vec<PathBuf> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("loop") {
                return None;
            }
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            let backing = backing.trim_end_matches('\n');
            (Path::new(backing) == want).then(|| PathBuf::from(format!("/dev/{name}")))
        })
        .collect();
    devs.sort();
    devs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_devices_by_backing_file() {
        let sys = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let file = data.path().join("v.img");
        std::fs::write(&file, b"").unwrap();
        let file = file.canonicalize().unwrap();
        for (dev, backing) in [
            ("loop3", file.display().to_string()),
            ("loop4", "/other".into()),
        ] {
            std::fs::create_dir_all(sys.path().join(dev).join("loop")).unwrap();
            std::fs::write(
                sys.path().join(dev).join("loop/backing_file"),
                format!("{backing}\n"),
            )
            .unwrap();
        }
        std::fs::create_dir_all(sys.path().join("sda")).unwrap();
        assert_eq!(
            devices_for(sys.path(), &file),
            vec![PathBuf::from("/dev/loop3")]
        );
        assert_eq!(
            attach_cmd(&file).args[..3],
            ["--find", "--show", "--nooverlap"]
        );
    }
}
