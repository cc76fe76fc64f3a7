//! A Debian minbase root (`debootstrap --variant=minbase bookworm`) made once per day and
//! cached under /var/tmp/berth-cache; tests copy it (init_images, install_deb).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cache of what the tests download (roots, apt archives).
pub const CACHE: &str = "/var/tmp/berth-cache";

/// A fresh Debian minbase root, made once per day and copied for each test.
pub fn debian_minbase() -> PathBuf {
    let cache = PathBuf::from(CACHE);
    std::fs::create_dir_all(&cache).expect("cache dir");
    let day = String::from_utf8(
        Command::new("date")
            .arg("+%Y%m%d")
            .output()
            .expect("date")
            .stdout,
    )
    .expect("date output");
    let root = cache.join(format!("minbase-bookworm-{}", day.trim()));
    if root.join("etc/debian_version").is_file() {
        return root;
    }
    let building = cache.join(format!("minbase-building-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(&building)
        .arg(apt_mirror())
        .output()
        .expect("debootstrap (scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "debootstrap failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Another test process may have finished first: either tree will do.
    if std::fs::rename(&building, &root).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    root
}

/// The Debian mirror the host's apt uses (its first `URIs:` or `deb` line).
pub fn apt_mirror() -> String {
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    text += &std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix("URIs:")
                .map(|u| u.split_whitespace().next().unwrap_or("").to_string())
                .or_else(|| {
                    l.strip_prefix("deb ")
                        .and_then(|r| r.split_whitespace().find(|w| w.starts_with("http")))
                        .map(str::to_string)
                })
                .filter(|u| u.contains("debian") && !u.contains("security"))
        })
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

pub fn cp_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {} {}", from.display(), to.display());
}
