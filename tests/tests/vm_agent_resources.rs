//! VM tier (device-mapper, which the host kernel lacks): `berth-agent resources` computes
//! `home` from a real VG (linear: its free space minus the floor) and a real thin pool (its
//! free data space minus the floor), less the filesystem's overhead, and follows what is
//! allocated. Run by scripts/vm-tier.sh (`BERTH_VM_ONLY=vm_agent` with vm_agent_gc).

use std::path::Path;
use std::process::Command;

use berth_tests::mesos::harness::binary;
use berth_tests::vm_lvm::{sh, vm_only, Vg, FAST_CONFIG};

/// `berth-agent resources --format text` for `lvm`: the `home` value.
fn home(dir: &Path, lvm: &Path) -> u64 {
    let cfg = dir.join("agent-res.toml");
    std::fs::write(
        &cfg,
        format!(
            "[resources]\ndisk_dir = {d:?}\n[resources.home]\nbackend = \"lvm\"\n\
             lvm_config = {l:?}\n[resources.net]\nparent = \"lo\"\nspeed_mbit = 1000.0\n",
            d = dir,
            l = lvm
        ),
    )
    .expect("config");
    let out = Command::new(binary("berth-agent"))
        .args(["resources", "--format", "text", "--config"])
        .arg(&cfg)
        .output()
        .expect("berth-agent resources");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim()
        .split(';')
        .find_map(|r| r.strip_prefix("home:"))
        .unwrap_or_else(|| panic!("no home in {text}"))
        .parse()
        .expect("home MiB")
}

/// What `free` bytes of `total` leave for a /home after a 10 % floor, in MiB of ext4 /home.
fn usable(total: f64, free: f64) -> u64 {
    let left = ((free - total * 10.0 / 100.0) / 1048576.0).max(0.0) as u64;
    berth_agent::resources::usable_mib(berth_lvm::Filesystem::Ext4, left, 4 << 20)
}

#[test]
fn vm_agent_resources_home_from_a_vg_and_a_thin_pool() {
    vm_only();
    let vg = Vg::new("r", 1024, 256);
    // Linear: the VG's free space (the pool already took 256 MiB and its metadata).
    let linear = vg.config(false);
    let [size, free] = vg.bytes("vgs", "vg_size,vg_free", &vg.name)[..] else {
        panic!("vgs")
    };
    let got = home(vg.dir.path(), &linear);
    eprintln!("linear: VG {size} B, free {free} B -> home {got} MiB");
    assert_eq!(got, usable(size, free));
    assert!(got > 500 && got < 700, "{got}");
    // 128 MiB more in use: home shrinks by as much.
    sh(&format!(
        "lvm lvcreate -q -y --config '{FAST_CONFIG}' -L 128m -n other {}",
        vg.name
    ));
    let [size, free] = vg.bytes("vgs", "vg_size,vg_free", &vg.name)[..] else {
        panic!("vgs")
    };
    let after = home(vg.dir.path(), &linear);
    assert_eq!(after, usable(size, free));
    assert!(got.abs_diff(after).abs_diff(128) <= 8, "{got} -> {after}");
    // Thin: the pool's free data space, shrinking as a thin LV is written.
    let thin = vg.config(true);
    let pool = format!("{}/pool", vg.name);
    let got = home(vg.dir.path(), &thin);
    let [psize, _] = vg.bytes("lvs", "lv_size,data_percent", &pool)[..] else {
        panic!("lvs")
    };
    assert_eq!(psize, (256u64 << 20) as f64);
    let dp: f64 = sh(&format!("lvm lvs --noheadings -o data_percent {pool}"))
        .parse()
        .expect("data_percent");
    eprintln!("thin: pool {psize} B, {dp} % used -> home {got} MiB");
    assert_eq!(got, usable(psize, psize * (1.0 - dp / 100.0)));
    sh(&format!(
        "lvm lvcreate -q -y --config '{FAST_CONFIG}' -V 128m --thin -n tv {pool} && \
         dd if=/dev/urandom of=/dev/{}/tv bs=1M count=64 oflag=direct status=none",
        vg.name
    ));
    let dp: f64 = sh(&format!("lvm lvs --noheadings -o data_percent {pool}"))
        .parse()
        .expect("data_percent");
    let after = home(vg.dir.path(), &thin);
    eprintln!("thin: 64 MiB written, {dp} % used -> home {after} MiB");
    assert_eq!(after, usable(psize, psize * (1.0 - dp / 100.0)));
    assert!(got.abs_diff(after).abs_diff(64) <= 4, "{got} -> {after}");
}
