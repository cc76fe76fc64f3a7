use super::*;
use std::collections::BTreeMap;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let m: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| m.get(k).cloned()
}

/// Settings that pass every check on this machine (sh as the "runtime" and init).
fn good() -> Vec<(&'static str, &'static str)> {
    vec![(RUNTIME, "/bin/sh"), (INIT, "/bin/busybox")]
}

#[test]
fn defaults_and_good_settings_pass() {
    assert_eq!(check(&vars(&good())), vec![]);
    let mut v = good();
    v.extend([
        (NET_PARENT, "eth1"),
        (NET_MODE, "vepa"),
        (CGROUP_PARENT, "berth.slice/tasks"),
        (volume::ENV_BACKEND, "loopfile"),
        (volume::ENV_DIR, "/var/lib/x"),
        (volume::ENV_FS, "xfs"),
        (volume::ENV_RETAIN, "always"),
        (AGENT_TIMEOUT, "500ms"),
    ]);
    assert_eq!(check(&vars(&v)), vec![]);
}

#[test]
fn each_bad_setting_is_named() {
    for (var, value, needle) in [
        (NET_MODE, "sideways", "bridge, private, vepa, passthru"),
        (CGROUP_PARENT, "../escape", "\"..\""),
        (CGROUP_PARENT, "/abs", "relative"),
        (CGROUP_PARENT, "a//b", "empty"),
        (STATE_DIR, "relative/dir", "absolute"),
        (volume::ENV_BACKEND, "zfs", "loopfile or lvm"),
        (AGENT_KEEPALIVE, "3", "not a duration"),
    ] {
        let mut v = good();
        v.push((var, value));
        if var == NET_MODE {
            v.push((NET_PARENT, "eth1"));
        }
        let p = check(&vars(&v));
        assert_eq!(p.len(), 1, "{var}={value}: {p:?}");
        assert_eq!(p[0].var, var);
        assert!(!p[0].per_task);
        assert!(p[0].to_string().contains(needle), "{}", p[0]);
    }
    // Volume settings parse together with the backend.
    let mut v = good();
    v.extend([(volume::ENV_BACKEND, "loopfile"), (volume::ENV_FS, "btrfs")]);
    let p = check(&vars(&v));
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].var, volume::ENV_FS);
    // Missing binaries are per task.
    let d = tempfile::tempdir().unwrap();
    let plain = d.path().join("init");
    std::fs::write(&plain, "not a program").unwrap();
    let plain = plain.display().to_string();
    let p = check(&vars(&[(RUNTIME, "/nonexistent/runc"), (INIT, &plain)]));
    let names: Vec<&str> = p.iter().map(|p| p.var.as_str()).collect();
    assert_eq!(names, [RUNTIME, INIT]);
    assert!(p.iter().all(|p| p.per_task));
}

#[test]
fn the_listing_has_one_line_per_setting_and_hides_unset_test_hooks() {
    let out = listing(&vars(&[(NET_MODE, "private")]));
    let names: Vec<&str> = SETTINGS
        .iter()
        .filter(|s| !s.hook)
        .map(|s| s.name)
        .collect();
    assert_eq!(out.lines().count(), names.len(), "{out}");
    for (line, name) in out.lines().zip(names) {
        assert!(line.starts_with(&format!("{name}=")), "{line}");
        assert!(line.contains("  # "), "{line}");
    }
    assert!(out.contains("BERTH_EXECUTOR_NET_MODE=private"), "{out}");
    let mode = out.lines().find(|l| l.contains("NET_MODE")).unwrap();
    assert!(mode.contains("(from env)"), "{mode}");
    let rt = out.lines().find(|l| l.contains("RUNTIME=")).unwrap();
    assert!(rt.contains("BERTH_EXECUTOR_RUNTIME=runc") && rt.contains("(default)"));
    assert!(!out.contains(FAIL_STEP) && !out.contains("TEST HOOK"));
    let out = listing(&vars(&[(FAIL_STEP, "bundle")]));
    let hook = out.lines().find(|l| l.contains(FAIL_STEP)).unwrap();
    assert!(
        hook.contains("TEST HOOK") && hook.contains("=bundle"),
        "{hook}"
    );
}

#[test]
fn the_host_has_cpus_and_memory() {
    let h = HostLimits::of_this_host();
    assert!(h.cpus >= 1.0 && h.cpus < 1e6, "{h:?}");
    assert!(h.mem_mb > 64.0 && h.mem_mb < 1e12, "{h:?}");
}
