//! The spec's `add` lines: copy files (or directory trees) into place before anything
//! starts. A destination written with a trailing `/`, or an existing directory, receives
//! the source under its own name.

use std::io;
use std::path::{Path, PathBuf};

use crate::spec::AddSpec;

/// A copy that failed.
#[derive(Debug, thiserror::Error)]
#[error("add: cannot copy {src} to {dest}")]
pub struct AddError {
    /// Source.
    pub src: PathBuf,
    /// Destination.
    pub dest: PathBuf,
    /// Why.
    #[source]
    pub err: io::Error,
}

fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(src)?;
    if meta.is_dir() {
        std::fs::create_dir_all(dest)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dest.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(src, dest).map(|_| ())
    }
}

/// Where `add` puts its source.
pub fn target(add: &AddSpec) -> PathBuf {
    if add.into_dir || add.dest.is_dir() {
        add.dest.join(add.src.file_name().unwrap_or_default())
    } else {
        add.dest.clone()
    }
}

/// Copies every `add` line in order; stops at the first failure.
pub fn run_all(adds: &[AddSpec]) -> Result<(), AddError> {
    for add in adds {
        let dest = target(add);
        copy_tree(&add.src, &dest).map_err(|err| AddError {
            src: add.src.clone(),
            dest,
            err,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_into_dirs_and_to_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a.xml"), "A").unwrap();
        std::fs::create_dir(d.path().join("tree")).unwrap();
        std::fs::write(d.path().join("tree/x"), "X").unwrap();
        let adds = vec![
            AddSpec {
                src: d.path().join("a.xml"),
                dest: d.path().join("out/conf/"),
                into_dir: true,
            },
            AddSpec {
                src: d.path().join("a.xml"),
                dest: d.path().join("out/b.xml"),
                into_dir: false,
            },
            AddSpec {
                src: d.path().join("tree"),
                dest: d.path().join("out/conf"),
                into_dir: false,
            },
        ];
        run_all(&adds).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.path().join("out/conf/a.xml")).unwrap(),
            "A"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("out/b.xml")).unwrap(),
            "A"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("out/conf/tree/x")).unwrap(),
            "X"
        );
        let missing = [AddSpec {
            src: d.path().join("nope"),
            dest: d.path().join("o/"),
            into_dir: true,
        }];
        assert!(run_all(&missing).unwrap_err().to_string().contains("nope"));
    }
}
