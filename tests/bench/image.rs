//! OCI image unpack: berth's safe, verified unpack of a busybox image (two gzip layers,
//! into a fresh cache each time) against GNU `tar -xzf` of the same layer blobs into a
//! fresh directory (no verification, no symlink checks); plus a cache hit. Median and p95
//! over 10 runs.
//!
//! Run: `cargo bench -p berth-tests --bench image --profile dev` (BERTH_BENCH_RUNS
//! overrides 10; the busybox rootfs needs busybox-static).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use berth_executor::image::cache::Cache;
use berth_executor::image::layout::resolve;
use berth_executor::image::reference::Reference;
use berth_tests::oci::{Entry, OciLayout};
use serde_json::json;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let runs: usize = std::env::var("BERTH_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let tree = dir.path().join("tree");
    berth_tests::rootfs::busybox(&tree, &[]).expect("busybox rootfs");
    let mut layout = OciLayout::create(&dir.path().join("images/bb")).expect("layout");
    let base = layout.layer_from_dir(&tree).expect("layer");
    let top = layout
        .layer(&[
            Entry::Whiteout("etc/hosts"),
            Entry::File("opt/new.txt", b"new\n", 0o644),
        ])
        .expect("layer");
    layout
        .add_image("v1", &[base.clone(), top.clone()], json!({}))
        .expect("image");
    let image = resolve(&layout.dir, &Reference::parse("bb:v1").unwrap()).expect("resolve");
    let blobs: Vec<_> = [&base, &top]
        .iter()
        .map(|d| layout.blob_path(d["digest"].as_str().unwrap()))
        .collect();
    let size: u64 = [&base, &top]
        .iter()
        .map(|d| d["size"].as_u64().unwrap())
        .sum();

    let (mut berth, mut anchor, mut hit) = (vec![], vec![], vec![]);
    for i in 0..runs {
        let cache = Cache::new(dir.path().join(format!("cache{i}")));
        let t = Instant::now();
        let e = cache.ensure(&image).expect("unpack");
        berth.push(ms(t));
        assert!(!e.hit && e.rootfs.join("bin/busybox").is_file());
        let t = Instant::now();
        assert!(cache.ensure(&image).expect("hit").hit);
        hit.push(ms(t));
        std::fs::remove_dir_all(&cache.dir).expect("rm cache");

        let out = dir.path().join(format!("tar{i}"));
        std::fs::create_dir(&out).expect("mkdir");
        let t = Instant::now();
        for b in &blobs {
            tar_x(b, &out);
        }
        anchor.push(ms(t));
        std::fs::remove_dir_all(&out).expect("rm tar");
    }
    println!(
        "image unpack benchmark: busybox image, 2 gzip layers, {} KiB compressed, {runs} runs (ms)",
        size / 1024
    );
    println!("{:<44} {:>9} {:>9}", "", "median", "p95");
    let mut med = vec![];
    for (name, v) in [
        ("berth unpack (verified, safe, into cache)", &mut berth),
        ("anchor: tar -xzf of the same layers", &mut anchor),
        ("berth cache hit", &mut hit),
    ] {
        let (m, p) = (pct(v, 0.5), pct(v, 0.95));
        med.push(m);
        println!("{name:<44} {m:>9.2} {p:>9.2}");
    }
    println!("ratio unpack berth/anchor (median): {:.2}", med[0] / med[1]);
}

fn tar_x(blob: &Path, out: &Path) {
    let ok = Command::new("tar")
        .arg("-xzf")
        .arg(blob)
        .arg("-C")
        .arg(out)
        .status()
        .expect("tar")
        .success();
    assert!(ok, "tar -xzf {}", blob.display());
}
