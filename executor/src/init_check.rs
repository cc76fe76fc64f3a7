//! The configured berth-init must run in any image: a static ELF executable for this
//! machine's architecture, with no program interpreter (no dynamic loader, no libc in the
//! image). Checked when the executor starts and again before each launch, so a wrong
//! init fails the task naming the file and what is wrong, before a container is made
//! (instead of runc's `exec /.berth/init: no such file or directory`).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// ELF header fields read here (64-bit little-endian layout; other layouts are refused).
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_INTERP: u32 = 3;
/// Program headers read at most (a real binary has a dozen).
const MAX_PHDRS: u16 = 256;

/// The machine the executor was built for (its `e_machine`).
#[cfg(target_arch = "x86_64")]
const HOST_MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const HOST_MACHINE: u16 = 183;

/// Ok if `path` is a static ELF executable the kernel can run here; else a sentence
/// naming the file and what is wrong.
pub fn check(path: &Path) -> Result<(), String> {
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{p}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{p} is not a regular file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{p} is not executable (no execute bit)"));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1 << 20).read_to_end(&mut bytes))
        .map_err(|e| format!("{p}: {e}"))?;
    elf_problem(&bytes).map_or(Ok(()), |why| Err(format!("{p} {why}")))
}

/// What keeps `bytes` (the file's start) from being a static ELF executable for this
/// machine, or None.
fn elf_problem(bytes: &[u8]) -> Option<String> {
    if bytes.starts_with(b"#!") {
        return Some("is a script, not an ELF binary: berth-init must be the static binary".into());
    }
    if bytes.len() < 64 || &bytes[..4] != ELF_MAGIC {
        return Some("is not an ELF binary".into());
    }
    if bytes[4] != ELFCLASS64 || bytes[5] != ELFDATA2LSB {
        return Some(format!(
            "is a {}-bit {} ELF file; this machine runs 64-bit little-endian binaries",
            if bytes[4] == 1 { 32 } else { 64 },
            if bytes[5] == 2 {
                "big-endian"
            } else {
                "little-endian"
            },
        ));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let machine = u16_at(18);
    if machine != HOST_MACHINE {
        return Some(format!(
            "is built for another architecture ({}), not {}",
            machine_name(machine),
            machine_name(HOST_MACHINE)
        ));
    }
    let kind = u16_at(16);
    if kind != ET_EXEC && kind != ET_DYN {
        return Some("is an ELF file but not an executable (an object or core file)".into());
    }
    let phoff = read_u64(bytes, 32)?;
    let phentsize = usize::from(u16_at(54));
    let phnum = u16_at(56).min(MAX_PHDRS);
    let Ok(phoff) = usize::try_from(phoff) else {
        return Some("has a corrupt program header table".into());
    };
    if phnum == 0 || phentsize < 56 {
        return Some("has no program headers: the kernel cannot run it".into());
    }
    for i in 0..usize::from(phnum) {
        let at = phoff + i * phentsize;
        let Some(header) = bytes.get(at..at + phentsize) else {
            return Some("has a truncated program header table".into());
        };
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) == PT_INTERP {
            let off = read_u64(header, 8).and_then(|o| usize::try_from(o).ok());
            let len = read_u64(header, 32).and_then(|o| usize::try_from(o).ok());
            let interp = off
                .zip(len)
                .and_then(|(o, l)| bytes.get(o..o + l))
                .map(|s| {
                    String::from_utf8_lossy(s)
                        .trim_end_matches('\0')
                        .to_string()
                })
                .unwrap_or_else(|| "a program interpreter".into());
            return Some(format!(
                "is dynamically linked (it needs {interp} and shared libraries the task's \
                 image may not have): use the static build (cargo build --release --target \
                 x86_64-unknown-linux-musl -p berth-init)"
            ));
        }
    }
    None
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

fn machine_name(m: u16) -> String {
    match m {
        3 => "x86 (32-bit)".into(),
        40 => "arm (32-bit)".into(),
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        243 => "riscv".into(),
        other => format!("ELF machine {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn file(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn err(p: &Path) -> String {
        let e = check(p).unwrap_err();
        assert!(e.starts_with(&p.display().to_string()), "{e}");
        e
    }

    /// A static binary: busybox-static (which the test tiers install).
    fn static_binary() -> PathBuf {
        ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("busybox-static is installed (scripts/deps.sh)")
    }

    #[test]
    fn a_static_elf_passes() {
        assert_eq!(check(&static_binary()), Ok(()));
    }

    #[test]
    fn a_dynamic_elf_names_its_loader() {
        let e = err(Path::new("/bin/sh"));
        assert!(e.contains("is dynamically linked"), "{e}");
        assert!(e.contains("ld-linux"), "{e}");
    }

    #[test]
    fn a_script_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = err(&file(d.path(), "init", b"#!/bin/sh\nexec \"$@\"\n", 0o755));
        assert!(e.contains("is a script"), "{e}");
    }

    #[test]
    fn a_wrong_arch_elf_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let mut bytes = std::fs::read(static_binary()).unwrap();
        bytes[18..20].copy_from_slice(&183u16.to_le_bytes()); // aarch64
        let e = err(&file(d.path(), "init", &bytes, 0o755));
        assert!(
            e.contains("another architecture (aarch64), not x86_64"),
            "{e}"
        );
        // A 32-bit ELF.
        bytes[4] = 1;
        let e = err(&file(d.path(), "init32", &bytes, 0o755));
        assert!(e.contains("32-bit"), "{e}");
    }

    #[test]
    fn missing_non_executable_and_non_elf_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = err(&d.path().join("none"));
        assert!(e.contains("No such file"), "{e}");
        let bytes = std::fs::read(static_binary()).unwrap();
        let e = err(&file(d.path(), "noexec", &bytes, 0o644));
        assert!(e.contains("not executable"), "{e}");
        let e = err(&file(
            d.path(),
            "text",
            b"hello, this is not a program",
            0o755,
        ));
        assert!(e.contains("not an ELF binary"), "{e}");
        let e = err(d.path());
        assert!(e.contains("not a regular file"), "{e}");
        let e = err(&file(d.path(), "short", &bytes[..40], 0o755));
        assert!(e.contains("not an ELF binary"), "{e}");
    }
}
