use super::*;
use crate::config::Resources as Settings;
use berth_lvm::volume::ThinUsage;
use berth_lvm::{Bytes, Filesystem};

struct Host {
    dir: tempfile::TempDir,
}

impl Host {
    /// A fake /proc with 8 GiB and a fake /sys with `eth9` at `speed`.
    fn new(speed: Option<&str>) -> Host {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(
            dir.path().join("proc/meminfo"),
            "MemTotal:        8388608 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        let nic = dir.path().join("sys/class/net/eth9");
        std::fs::create_dir_all(&nic).unwrap();
        if let Some(s) = speed {
            std::fs::write(nic.join("speed"), s).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("vol")).unwrap();
        Host { dir }
    }

    fn settings(&self) -> Settings {
        let mut s = Settings {
            disk_dir: self.dir.path().to_owned(),
            ..Settings::default()
        };
        s.home.loopfile_dir = self.dir.path().join("vol");
        s.net.parent = "eth9".into();
        s.net.vlans = vec!["100".into(), "200-210".into(), "201".into()];
        s
    }

    fn run(&self, s: &Settings) -> Result<Vec<Resource>, ResourceError> {
        let proc = self.dir.path().join("proc");
        let sys = self.dir.path().join("sys");
        let roots = Roots {
            proc: &proc,
            sys: &sys,
        };
        compute(s, &roots, 4, &|| open_backend(&s.home))
    }
}

fn get<'a>(rs: &'a [Resource], name: &str) -> &'a Value {
    &rs.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .value
}

#[test]
fn resources_from_a_real_loopfile_dir() {
    let h = Host::new(Some("10000\n"));
    let s = h.settings();
    let rs = h.run(&s).unwrap();
    assert_eq!(get(&rs, "cpus"), &Value::Scalar(4.0));
    assert_eq!(get(&rs, "mem"), &Value::Scalar(8192.0 - 1024.0));
    assert_eq!(get(&rs, "ports"), &Value::Ranges(vec![(31000, 32000)]));
    assert_eq!(get(&rs, resource::BANDWIDTH), &Value::Scalar(9900.0));
    assert_eq!(
        get(&rs, resource::VLANS),
        &Value::Ranges(vec![(100, 100), (200, 210)])
    );
    // The space left: the directory's free space minus 5 % of its size, as statvfs says
    // now (give or take what others write meanwhile).
    let st = nix::sys::statvfs::statvfs(&s.home.loopfile_dir).unwrap();
    let f = st.fragment_size() as f64;
    let left = (st.blocks_available() as f64 * f - st.blocks() as f64 * f * 0.05) / 1048576.0;
    let &Value::Scalar(home) = get(&rs, resource::HOME) else {
        panic!()
    };
    // home = the largest /home whose ext4 volume (with its overhead) fits in that space.
    let device =
        |mib: f64| Filesystem::Ext4.device_size(Bytes::mib(mib as u64)).0 as f64 / 1048576.0;
    assert!(home > 0.0 && home < left, "home {home}, left {left}");
    assert!(
        (device(home) - left).abs() <= 64.0,
        "home {home} needs {} MiB, left {left}",
        device(home)
    );
    assert!(
        device(home + 64.0) > left - 64.0,
        "home {home} is not the largest: left {left}"
    );
}

#[test]
fn home_leaves_room_for_each_filesystem_s_overhead() {
    for left in [8u64, 100, 1024, 50_000, 2_000_000] {
        for fs in [Filesystem::Ext4, Filesystem::Xfs] {
            for align in [LOOPFILE_ALIGN, LVM_ALIGN] {
                let u = usable_mib(fs, left, align);
                let dev = |u: u64| fs.device_size(Bytes::mib(u)).round_up(align);
                assert!(dev(u) <= Bytes::mib(left) || u == 0, "{fs} {left}: {u}");
                assert!(
                    dev(u + 1) > Bytes::mib(left),
                    "{fs} {left}: {u} is not the largest"
                );
            }
        }
    }
    // 1 GiB left: ext4's journal, inode tables and reserve take a few percent.
    let u = usable_mib(Filesystem::Ext4, 1024, LOOPFILE_ALIGN);
    assert!((900..1010).contains(&u), "{u}");
    assert!(usable_mib(Filesystem::Xfs, 1024, LOOPFILE_ALIGN) < u);
    assert_eq!(usable_mib(Filesystem::Ext4, 0, LVM_ALIGN), 0);
    // A bad filesystem name names the setting.
    let h = Host::new(Some("10000\n"));
    let mut s = h.settings();
    s.home.fs = "zfs".into();
    assert_eq!(h.run(&s).unwrap_err().setting, "resources.home.fs");
}

#[test]
fn nic_without_speed_names_the_setting() {
    for speed in [None, Some("-1\n"), Some("0")] {
        let h = Host::new(speed);
        let e = h.run(&h.settings()).unwrap_err();
        assert_eq!(e.setting, "resources.net.speed_mbit", "{speed:?}: {e}");
    }
    let h = Host::new(None);
    let mut s = h.settings();
    s.net.speed_mbit = Some(1000.0);
    assert_eq!(
        get(&h.run(&s).unwrap(), resource::BANDWIDTH),
        &Value::Scalar(900.0)
    );
}

#[test]
fn bad_settings_name_the_setting() {
    let h = Host::new(Some("1000"));
    let mut s = h.settings();
    s.net.reserve_mbit = 1000.0;
    assert_eq!(h.run(&s).unwrap_err().setting, "resources.net.reserve_mbit");
    let mut s = h.settings();
    s.net.parent = "nope0".into();
    assert_eq!(h.run(&s).unwrap_err().setting, "resources.net.parent");
    let mut s = h.settings();
    s.mem_reserve_mib = 9000;
    assert_eq!(h.run(&s).unwrap_err().setting, "resources.mem_reserve_mib");
    let mut s = h.settings();
    s.home.backend = "lvm".into();
    s.home.lvm_config = h.dir.path().join("missing.json");
    assert_eq!(h.run(&s).unwrap_err().setting, "resources.home.lvm_config");
}

#[test]
fn home_of_a_thin_pool_uses_the_pool() {
    let cap = Capacity {
        total: Bytes::mib(100_000),
        free: Bytes::mib(90_000),
        thin: Some(ThinUsage {
            pool_size: Bytes::mib(10_000),
            data_percent: 40.0,
            metadata_percent: 1.0,
        }),
    };
    assert_eq!(home_mib(&cap, 10.0), 5000);
    let linear = Capacity { thin: None, ..cap };
    assert_eq!(home_mib(&linear, 10.0), 80_000);
    assert_eq!(home_mib(&linear, 95.0), 0);
}

#[test]
fn both_forms_mesos_accepts() {
    let rs = vec![
        Resource {
            name: "cpus",
            value: Value::Scalar(4.0),
        },
        Resource {
            name: "home",
            value: Value::Scalar(1234.0),
        },
        Resource {
            name: "vlans",
            value: Value::Ranges(vec![(100, 100), (200, 210)]),
        },
    ];
    assert_eq!(
        render::text(&rs),
        "cpus:4;home:1234;vlans:[100-100,200-210]"
    );
    let j = render::json(&rs);
    assert_eq!(
        j[0],
        serde_json::json!({"name":"cpus","type":"SCALAR","scalar":{"value":4.0}})
    );
    assert_eq!(
        j[2],
        serde_json::json!({"name":"vlans","type":"RANGES","ranges":{"range":[
            {"begin":100,"end":100},{"begin":200,"end":210}]}})
    );
}

#[test]
fn ranges_parse_and_merge() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        parse_ranges(&v(&["5-7", "1", "2-4"]), 1, 10).unwrap(),
        vec![(1, 7)]
    );
    for bad in [&["0"][..], &["11"], &["3-2"], &["a-b"], &["-"]] {
        assert!(parse_ranges(&v(bad), 1, 10).is_err(), "{bad:?}");
    }
}
