//! Fixture trees of both layouts, as the kernel writes them (v1 from this machine's
//! hybrid mount, v2 from a unified-hierarchy host).

use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const CG: &str = "/berth/berth-web.1";

fn v1_tree(root: &Path) {
    let d = "berth/berth-web.1";
    write(root, &format!("cpuacct/{d}/cpuacct.usage"), "2500000000\n");
    write(
        root,
        &format!("cpuacct/{d}/cpuacct.stat"),
        "user 150\nsystem 50\n",
    );
    write(
        root,
        &format!("cpu/{d}/cpu.stat"),
        "nr_periods 40\nnr_throttled 7\nthrottled_time 350000000\nnr_bursts 0\nburst_time 0\n",
    );
    write(root, &format!("cpu/{d}/cpu.cfs_quota_us"), "50000\n");
    write(root, &format!("cpu/{d}/cpu.cfs_period_us"), "100000\n");
    write(
        root,
        &format!("memory/{d}/memory.usage_in_bytes"),
        "62914560\n",
    );
    write(
        root,
        &format!("memory/{d}/memory.stat"),
        "cache 1000\nrss 2000\nshmem 0\ntotal_cache 8388608\ntotal_rss 52428800\ntotal_shmem 0\n",
    );
    write(
        root,
        &format!("memory/{d}/memory.limit_in_bytes"),
        "134217728\n",
    );
    write(
        root,
        &format!("memory/{d}/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    );
    write(
        root,
        &format!("blkio/{d}/blkio.throttle.io_service_bytes"),
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Async 12288\n8:0 Discard 0\n8:0 Total 12288\n\
         8:16 Read 1\n8:16 Write 2\n8:16 Total 3\nTotal 12291\n",
    );
    write(
        root,
        &format!("blkio/{d}/blkio.throttle.io_serviced"),
        "8:0 Read 3\n8:0 Write 5\n8:0 Total 8\nTotal 8\n",
    );
    write(root, &format!("pids/{d}/pids.current"), "4\n");
    // What makes the root a v1 (or hybrid) mount.
    write(
        root,
        "memory/memory.limit_in_bytes",
        "9223372036854771712\n",
    );
}

#[test]
fn v1_hybrid_layout_is_read_from_each_controller() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path());
    let layout = Layout::detect(t.path());
    assert_eq!(layout, Layout::V1(t.path().to_owned()));
    let s = read(&layout, CG).unwrap();
    assert_eq!(
        s,
        CgroupStats {
            cpu_usage_ns: 2_500_000_000,
            cpu_user_ns: 1_500_000_000,
            cpu_system_ns: 500_000_000,
            cpu_periods: 40,
            cpu_throttled_periods: 7,
            cpu_throttled_ns: 350_000_000,
            cpu_limit: Some(0.5),
            mem_usage: 62_914_560,
            mem_rss: 52_428_800,
            mem_cache: 8_388_608,
            mem_limit: Some(134_217_728),
            oom_kills: 2,
            io_read_bytes: 4097,
            io_write_bytes: 8194,
            io_read_ops: 3,
            io_write_ops: 5,
            pids: 4,
        }
    );
}

#[test]
fn v1_without_limits_or_optional_controllers() {
    let t = tempfile::tempdir().unwrap();
    v1_tree(t.path());
    let d = "berth/berth-web.1";
    write(t.path(), &format!("cpu/{d}/cpu.cfs_quota_us"), "-1\n");
    write(
        t.path(),
        &format!("memory/{d}/memory.limit_in_bytes"),
        "9223372036854771712\n",
    );
    std::fs::remove_dir_all(t.path().join("pids")).unwrap();
    std::fs::remove_dir_all(t.path().join("blkio")).unwrap();
    let s = read(&Layout::detect(t.path()), CG).unwrap();
    assert_eq!((s.cpu_limit, s.mem_limit), (None, None));
    assert_eq!((s.pids, s.io_read_bytes), (0, 0));
}

fn v2_tree(root: &Path) {
    let d = "berth/berth-web.1";
    write(
        root,
        "cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    write(
        root,
        &format!("{d}/cpu.stat"),
        "usage_usec 2500000\nuser_usec 1500000\nsystem_usec 1000000\nnr_periods 40\n\
         nr_throttled 7\nthrottled_usec 350000\nnr_bursts 0\nburst_usec 0\n",
    );
    write(root, &format!("{d}/cpu.max"), "150000 100000\n");
    write(root, &format!("{d}/memory.current"), "62914560\n");
    write(
        root,
        &format!("{d}/memory.stat"),
        "anon 52428800\nfile 8388608\nkernel 1048576\nshmem 0\nfile_mapped 4096\n",
    );
    write(root, &format!("{d}/memory.max"), "134217728\n");
    write(
        root,
        &format!("{d}/memory.events"),
        "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n",
    );
    write(
        root,
        &format!("{d}/io.stat"),
        "8:0 rbytes=4096 wbytes=8192 rios=3 wios=5 dbytes=0 dios=0\n\
         8:16 rbytes=1 wbytes=2 rios=0 wios=0 dbytes=0 dios=0\n",
    );
    write(root, &format!("{d}/pids.current"), "4\n");
}

#[test]
fn v2_unified_layout_gives_the_same_stats() {
    let t = tempfile::tempdir().unwrap();
    v2_tree(t.path());
    let layout = Layout::detect(t.path());
    assert_eq!(layout, Layout::V2(t.path().to_owned()));
    let s = read(&layout, CG).unwrap();
    assert_eq!(
        s,
        CgroupStats {
            cpu_usage_ns: 2_500_000_000,
            cpu_user_ns: 1_500_000_000,
            cpu_system_ns: 1_000_000_000,
            cpu_periods: 40,
            cpu_throttled_periods: 7,
            cpu_throttled_ns: 350_000_000,
            cpu_limit: Some(1.5),
            mem_usage: 62_914_560,
            mem_rss: 52_428_800,
            mem_cache: 8_388_608,
            mem_limit: Some(134_217_728),
            oom_kills: 2,
            io_read_bytes: 4097,
            io_write_bytes: 8194,
            io_read_ops: 3,
            io_write_ops: 5,
            pids: 4,
        }
    );
}

#[test]
fn v2_max_means_unlimited_and_a_missing_cgroup_is_an_error_naming_the_file() {
    let t = tempfile::tempdir().unwrap();
    v2_tree(t.path());
    let d = "berth/berth-web.1";
    write(t.path(), &format!("{d}/cpu.max"), "max 100000\n");
    write(t.path(), &format!("{d}/memory.max"), "max\n");
    let s = read(&Layout::detect(t.path()), CG).unwrap();
    assert_eq!((s.cpu_limit, s.mem_limit), (None, None));
    let e = read(&Layout::detect(t.path()), "/berth/gone").unwrap_err();
    assert!(e.path.ends_with("berth/gone/cpu.stat"), "{e}");
}
