// The build script of every berth binary crate (each crate's build.rs `include!`s this
// file): sets `BERTH_VERSION`, which every binary's `--version` prints.
//
// From a git checkout it is the workspace version plus `+git<N>.g<hash>`: N commits up to
// HEAD (so versions of one branch sort in build order, as Debian versions must) and
// HEAD's abbreviated hash, e.g. `0.1.0+git412.g7f1314c2ab`. Without git (a source
// tarball, no `git` on PATH) it is the plain workspace version. `BERTH_VERSION` set in
// the build's environment wins over both (a release build that names its own version).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BERTH_VERSION");
    let base = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let version = match std::env::var("BERTH_VERSION") {
        Ok(v) if !v.is_empty() => v,
        _ => match git_suffix() {
            Some(suffix) => format!("{base}+{suffix}"),
            None => base,
        },
    };
    println!("cargo:rustc-env=BERTH_VERSION={version}");
    for path in git_watch() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn git_suffix() -> Option<String> {
    let count = git(&["rev-list", "--count", "HEAD"])?;
    let hash = git(&["rev-parse", "--short=10", "HEAD"])?;
    Some(format!("git{count}.g{hash}"))
}

/// The files that change when HEAD moves: HEAD itself, the branch it names, packed-refs.
/// Only existing ones: cargo reruns a script on every build for a missing path.
fn git_watch() -> Vec<PathBuf> {
    let (Some(dir), Some(common)) = (
        git(&["rev-parse", "--absolute-git-dir"]),
        git(&["rev-parse", "--git-common-dir"]),
    ) else {
        return Vec::new();
    };
    let dir = PathBuf::from(dir);
    let common = if Path::new(&common).is_absolute() {
        PathBuf::from(common)
    } else {
        std::env::current_dir().unwrap_or_default().join(common)
    };
    let mut paths = vec![dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        paths.push(common.join(branch));
    }
    paths.retain(|p| p.exists());
    paths
}
