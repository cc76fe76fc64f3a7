//! A small root filesystem for container tests: busybox-static with its applets, the
//! usual directories, and the shared libraries of any host binaries that will be
//! bind-mounted into the container (berth-init, when it is dynamically linked).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Applets linked into /bin.
const APPLETS: &[&str] = &[
    "sh", "ash", "sleep", "echo", "cat", "ls", "true", "false", "kill", "ps", "hostname", "env",
    "id", "mkdir", "rm", "touch", "test", "[", "wget", "nc", "httpd", "ip", "mount", "grep",
    "head", "tail", "printf", "date", "uname",
];

/// Builds the root filesystem in `dir` (created if needed). `host_binaries` are binaries
/// that will be bind-mounted in; their shared libraries are copied to the same paths.
pub fn busybox(dir: &Path, host_binaries: &[&Path]) -> std::io::Result<()> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    for d in [
        "proc", "sys", "dev", "tmp", "etc", "run", "root", "var", "usr/bin", "mnt",
    ] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "busybox-static is not installed",
            )
        })?;
    std::fs::copy(busybox, bin.join("busybox"))?;
    for a in APPLETS {
        let link = bin.join(a);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link)?;
        }
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(dir.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    for b in host_binaries {
        for lib in shared_libraries(b)? {
            let dest = dir.join(lib.strip_prefix("/").unwrap_or(&lib));
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&lib, &dest)?;
        }
    }
    Ok(())
}

/// The shared libraries (and the loader) a binary needs, from `ldd`; empty if static.
pub fn shared_libraries(binary: &Path) -> std::io::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
            // The loader is also wanted under its real path when it is a symlink.
            if let Ok(real) = std::fs::canonicalize(p) {
                if real != Path::new(p) {
                    libs.push(real);
                }
            }
        }
    }
    Ok(libs)
}
