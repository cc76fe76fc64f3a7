//! Volume benchmark (VM tier: needs device-mapper; run it with scripts/bench-vm.sh).
//!
//! 1. fio sequential and random read/write on a linear LV, a thin LV, and a file in an
//!    overlayfs directory (upper on ext4 on an LV, as container runtimes stack it), each as a
//!    ratio to the raw loop device underneath the volume group (the anchor).
//! 2. Time to a ready (created + mounted) container root from a 200 MB image: a thin
//!    snapshot of the image's base volume (berth) vs a new volume filled by copying the files.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_lvm::lvm::image::ImageSpec;
use berth_lvm::lvm::{Layout, LvmBackend, LvmConfig};
use berth_lvm::{Backend, Bytes, CreateRequest, Filesystem, MountOptions, Owner, VolumeName};

const VG: &str = "benchvg";
const FIO_SECS: u32 = 6;

fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[derive(Clone, Copy)]
struct Pattern {
    name: &'static str,
    rw: &'static str,
    bs: &'static str,
    depth: u32,
}

const PATTERNS: [Pattern; 4] = [
    Pattern {
        name: "seq read 1M",
        rw: "read",
        bs: "1M",
        depth: 8,
    },
    Pattern {
        name: "seq write 1M",
        rw: "write",
        bs: "1M",
        depth: 8,
    },
    Pattern {
        name: "rand read 4k",
        rw: "randread",
        bs: "4k",
        depth: 16,
    },
    Pattern {
        name: "rand write 4k",
        rw: "randwrite",
        bs: "4k",
        depth: 16,
    },
];

/// Writes the whole test region once, untimed, so reads hit allocated blocks everywhere (an
/// unwritten thin block reads as zeros without touching the disk) and no pattern pays for the
/// tmpfs backing file's first allocation.
fn prefill(target: &Path, size_mib: u64) {
    sh(&format!(
        "dd if=/dev/zero of={} bs=1M count={size_mib} oflag=direct conv=fsync status=none",
        target.display()
    ));
}

/// Runs one fio job on `target` (a block device or a file) and returns MiB/s.
fn fio(target: &Path, p: Pattern, size_mib: u64) -> f64 {
    let out = Command::new("fio")
        .args([
            "--name=b",
            "--ioengine=libaio",
            "--direct=1",
            "--time_based",
            "--group_reporting",
            "--output-format=json",
        ])
        .arg(format!("--filename={}", target.display()))
        .arg(format!("--rw={}", p.rw))
        .arg(format!("--bs={}", p.bs))
        .arg(format!("--iodepth={}", p.depth))
        .arg(format!("--size={size_mib}M"))
        .arg(format!("--runtime={FIO_SECS}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fio on {}: {}",
        target.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("fio json");
    let job = &v["jobs"][0];
    let kib =
        job["read"]["bw"].as_f64().unwrap_or(0.0) + job["write"]["bw"].as_f64().unwrap_or(0.0);
    kib / 1024.0
}

/// 200 files of 1 MiB and 2000 of 4 KiB of incompressible bytes (xorshift), written from
/// here: spawning 2200 `head` processes costs minutes under emulation.
fn write_tree(src: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut fill = |buf: &mut [u8]| {
        for chunk in buf.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    };
    let mut big = vec![0u8; 1 << 20];
    for i in 1..=200 {
        fill(&mut big);
        std::fs::write(src.join(format!("lib/blob{i}")), &big).unwrap();
    }
    let mut small = vec![0u8; 4096];
    for i in 1..=2000 {
        fill(&mut small);
        std::fs::write(src.join(format!("etc/f{i}")), &small).unwrap();
    }
}

fn main() {
    if std::env::var("BERTH_VM_TIER").as_deref() != Ok("1") {
        eprintln!("bench lvm: needs device-mapper; run scripts/bench-vm.sh (boots the VM and runs it there)");
        std::process::exit(1);
    }
    let scratch = PathBuf::from(
        std::env::var("BERTH_VM_SCRATCH").expect("BERTH_VM_SCRATCH (a tmpfs in the VM)"),
    );
    let work = scratch.join("bench-lvm");
    std::fs::create_dir_all(&work).unwrap();

    // One loop device on a tmpfs file is the disk; the raw anchor is measured on it first.
    let disk = work.join("disk.img");
    sh(&format!("truncate -s 2200M {}", disk.display()));
    let dev = PathBuf::from(sh(&format!("losetup -f --show {}", disk.display())));
    println!(
        "bench lvm: disk {} on tmpfs, fio {FIO_SECS}s per job, libaio, O_DIRECT",
        dev.display()
    );

    let size_mib = 384;
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    prefill(&dev, size_mib);
    let raw: Vec<f64> = PATTERNS.iter().map(|p| fio(&dev, *p, size_mib)).collect();
    rows.push(("raw loop device (anchor)".into(), raw.clone()));

    sh(&format!(
        "lvm pvcreate -q -y {d} && lvm vgcreate -q {VG} {d}",
        d = dev.display()
    ));
    sh(&format!("lvm lvcreate -q -y --type thin-pool -L 900m -n pool {VG} && lvm lvchange -q --errorwhenfull y {VG}/pool"));
    let mut cfg = LvmConfig::new(VG);
    cfg.thin_pool = Some("pool".into());
    cfg.lock_dir = work.join("locks");
    cfg.free_floor_percent = 1.0;
    let linear = LvmBackend::new(cfg.clone()).unwrap();
    cfg.home_layout = Layout::Thin;
    let thin = LvmBackend::new(cfg).unwrap();
    let owner = Owner::new("bench").unwrap();

    let lin = linear
        .create(&CreateRequest {
            name: VolumeName::new("bench-linear").unwrap(),
            size: Bytes::mib(448),
            fs: Filesystem::Ext4,
            owner: owner.clone(),
        })
        .unwrap();
    prefill(&lin.device, size_mib);
    rows.push((
        "linear LV".into(),
        PATTERNS
            .iter()
            .map(|p| fio(&lin.device, *p, size_mib))
            .collect(),
    ));
    let th = thin
        .create(&CreateRequest {
            name: VolumeName::new("bench-thin").unwrap(),
            size: Bytes::mib(448),
            fs: Filesystem::Ext4,
            owner: owner.clone(),
        })
        .unwrap();
    prefill(&th.device, size_mib);
    rows.push((
        "thin LV".into(),
        PATTERNS
            .iter()
            .map(|p| fio(&th.device, *p, size_mib))
            .collect(),
    ));

    // overlayfs: lower + upper + work on ext4 on the linear LV (re-made as a filesystem).
    sh(&format!(
        "mkfs.ext4 -q -F -E nodiscard {}",
        lin.device.display()
    ));
    let base = work.join("ovl-base");
    std::fs::create_dir_all(&base).unwrap();
    sh(&format!(
        "mount {} {}",
        lin.device.display(),
        base.display()
    ));
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(base.join(d)).unwrap();
    }
    let merged = base.join("merged");
    sh(&format!(
        "mount -t overlay overlay -o lowerdir={b}/lower,upperdir={b}/upper,workdir={b}/work {m}",
        b = base.display(),
        m = merged.display()
    ));
    let f = merged.join("fio.dat");
    prefill(&f, size_mib);
    rows.push((
        "overlayfs dir (ext4 upper)".into(),
        PATTERNS.iter().map(|p| fio(&f, *p, size_mib)).collect(),
    ));
    let _ = std::fs::remove_file(&f);
    sh(&format!(
        "umount {} && umount {}",
        merged.display(),
        base.display()
    ));

    println!(
        "\n{:<28} {:>16} {:>16} {:>16} {:>16}",
        "fio MiB/s (ratio to raw)",
        PATTERNS[0].name,
        PATTERNS[1].name,
        PATTERNS[2].name,
        PATTERNS[3].name
    );
    for (name, v) in &rows {
        let cells: Vec<String> = v
            .iter()
            .zip(&raw)
            .map(|(x, r)| format!("{x:>7.1} ({:>4.2})", x / r))
            .collect();
        println!(
            "{name:<28} {:>16} {:>16} {:>16} {:>16}",
            cells[0], cells[1], cells[2], cells[3]
        );
    }

    // Roots: a 200 MB image tree (200 x 1 MiB + 2000 x 4 KiB files).
    let src = work.join("image");
    std::fs::create_dir_all(src.join("lib")).unwrap();
    std::fs::create_dir_all(src.join("etc")).unwrap();
    write_tree(&src);
    let image_bytes: u64 = sh(&format!("du -sb {} | cut -f1", src.display()))
        .parse()
        .unwrap();
    let fill = |dir: &Path| -> std::io::Result<()> {
        let st = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(dir)
            .status()?;
        assert!(st.success());
        Ok(())
    };
    let t = Instant::now();
    let img = thin
        .ensure_image("bench/app:1", Bytes::mib(320), Filesystem::Ext4, &fill)
        .unwrap();
    let base_fill = t.elapsed();
    let spec = ImageSpec {
        id: "bench/app:1",
        size: Bytes::mib(320),
        fs: Filesystem::Ext4,
        fill: &fill,
    };

    // What the executor does per task (BERTH_EXECUTOR_VOLUME_ROOT=snapshot): image_root (one
    // report finds the base, one lvcreate; lvextend + resize2fs when grown) + mount.
    let mut snap_times = Vec::new();
    let mut grown_times = Vec::new();
    let mut copy_times = Vec::new();
    for i in 0..3 {
        for (size, times) in [
            (img.size, &mut snap_times),
            (Bytes::mib(512), &mut grown_times),
        ] {
            let mnt = work.join(format!("root-snap-{i}"));
            std::fs::create_dir_all(&mnt).unwrap();
            let t = Instant::now();
            let name = VolumeName::new(&format!("bench-root-snap-{i}")).unwrap();
            let v = thin.image_root(&spec, &name, &owner, size, true).unwrap();
            thin.mount_new(&v, &mnt, &MountOptions::default()).unwrap();
            times.push(t.elapsed());
            assert!(mnt.join("lib/blob200").exists());
            thin.unmount(&mnt).unwrap();
            thin.remove(&name).unwrap();
        }

        let mnt = work.join(format!("root-copy-{i}"));
        let t = Instant::now();
        let name = VolumeName::new(&format!("bench-root-copy-{i}")).unwrap();
        thin.create(&CreateRequest {
            name: name.clone(),
            size: Bytes::mib(512),
            fs: Filesystem::Ext4,
            owner: owner.clone(),
        })
        .unwrap();
        thin.mount(&name, &mnt, &MountOptions::default()).unwrap();
        fill(&mnt).unwrap();
        sh(&format!("sync -f {}", mnt.display()));
        copy_times.push(t.elapsed());
        thin.unmount(&mnt).unwrap();
        thin.remove(&name).unwrap();
    }
    let med = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (s, g, c) = (
        med(&mut snap_times),
        med(&mut grown_times),
        med(&mut copy_times),
    );
    println!(
        "\nready root from a {} MB image (median of 3; create + mount):",
        image_bytes / 1_000_000
    );
    println!(
        "  thin snapshot of the image base (berth)  {:>8.2} s   ({:.3}x the copy)",
        s.as_secs_f64(),
        s.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  same, grown to 512 MiB (lvextend+resize2fs) {:>5.2} s   ({:.3}x the copy)",
        g.as_secs_f64(),
        g.as_secs_f64() / c.as_secs_f64()
    );
    println!(
        "  new thin LV + mkfs + cp -a + sync        {:>8.2} s   (anchor)",
        c.as_secs_f64()
    );
    println!(
        "  (one-time: image base create + fill      {:>8.2} s)",
        base_fill.as_secs_f64()
    );

    thin.remove(&img.name).unwrap();
    linear.remove(&lin.name).unwrap();
    thin.remove(&th.name).unwrap();
    sh(&format!(
        "lvm vgremove -qq -ff -y {VG} >/dev/null && losetup -d {}",
        dev.display()
    ));
    std::fs::remove_dir_all(&work).unwrap();
}
