use super::detect::{probe_via_record, record_name, FileId, ProbeRecord};
use super::*;
use std::os::unix::fs::PermissionsExt;

#[test]
fn the_kind_comes_from_the_version_line() {
    let runc = "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n";
    let crun = "crun version 1.8.1\ncommit: f8a096be\nrundir: /run/crun\n";
    assert_eq!(Kind::from_version(runc), Some(Kind::Runc));
    assert_eq!(Kind::from_version(crun), Some(Kind::Crun));
    assert_eq!(
        Kind::from_version("youki version 0.3.0\n"),
        Some(Kind::Other)
    );
    assert_eq!(Kind::from_version("Usage: foo [options]\n"), None);
    assert_eq!(Kind::from_version(""), None);
}

#[test]
fn only_crun_on_a_hybrid_host_with_v2_controllers_gets_the_v1_only_view() {
    let hybrid = CgroupMode::Hybrid {
        v2_controllers: true,
    };
    assert!(needs_v1_only_view(Kind::Crun, hybrid));
    assert!(!needs_v1_only_view(Kind::Runc, hybrid));
    assert!(!needs_v1_only_view(Kind::Other, hybrid));
    for mode in [
        CgroupMode::Unified,
        CgroupMode::Legacy,
        CgroupMode::Hybrid {
            v2_controllers: false,
        },
    ] {
        assert!(!needs_v1_only_view(Kind::Crun, mode), "{mode:?}");
    }
    assert!(Kind::Runc.signals_created_init());
    assert!(!Kind::Crun.signals_created_init() && !Kind::Other.signals_created_init());
}

#[test]
fn a_missing_or_non_executable_runtime_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(matches!(
        probe(&missing),
        Err(RuncError::NotFound { runtime }) if runtime == missing
    ));
    assert!(matches!(
        resolve(Path::new("berth-no-such-runtime-anywhere")),
        Err(RuncError::NotFound { .. })
    ));
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = probe(&plain).unwrap_err();
    assert!(matches!(e, RuncError::NotExecutable { .. }), "{e}");
    assert!(e.to_string().contains("not an executable"), "{e}");
    assert!(matches!(
        probe(dir.path()),
        Err(RuncError::NotExecutable { .. })
    ));
}

#[test]
fn a_program_that_is_no_runtime_is_refused_and_a_fake_runc_is_probed() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    // A test thread forking while another has a script open for writing makes exec
    // fail with ETXTBSY for a moment: retry that.
    let probe_retrying = |p: &Path| loop {
        match probe(p) {
            Err(RuncError::Spawn { err, .. }) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            r => break r,
        }
    };
    let not = write("true-ish", "#!/bin/sh\necho hello\n");
    assert!(matches!(
        probe_retrying(&not),
        Err(RuncError::NotARuntime { .. })
    ));
    let fake = write("fake-crun", "#!/bin/sh\necho 'crun version 9.9'\n");
    let p = probe_retrying(&fake).unwrap();
    assert_eq!(
        (p.kind, p.version.as_str()),
        (Kind::Crun, "crun version 9.9")
    );
    assert_eq!(p.path, fake);
}

#[test]
fn a_probe_record_serves_only_the_file_it_was_made_from() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    let bin = dir.path().join("fake-runc");
    let file = records.join(record_name(&bin));
    assert!(record_name(&bin).starts_with("runtime-") && !record_name(&bin).contains('/'));
    // A new file each time, as an upgrade installs one (new inode and ctime).
    let install = |body: &str| {
        let tmp = dir.path().join("new");
        std::fs::write(&tmp, body).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &bin).unwrap();
    };
    // See `a_program_that_is_no_runtime_is_refused_and_a_fake_runc_is_probed`.
    let probe = || loop {
        match probe_via_record(bin.clone(), Some(&records)) {
            Err(RuncError::Spawn { err, .. }) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            r => break r.unwrap(),
        }
    };
    install("#!/bin/sh\necho 'runc version 1.0'\n");
    let p = probe();
    assert_eq!(
        (p.kind, p.version.as_str()),
        (Kind::Runc, "runc version 1.0")
    );
    let mut rec = ProbeRecord::load(&file).expect("record written");
    assert_eq!((rec.path.as_path(), rec.kind), (bin.as_path(), Kind::Runc));
    assert_eq!(Some(rec.id), FileId::of(&bin));
    // While the file is the same, the record answers (no `--version`: a record
    // altered by hand shows it).
    rec.version = "from the record".into();
    rec.save(&file);
    assert_eq!(probe().version, "from the record");
    // The binary replaced: the record no longer matches and is made again.
    install("#!/bin/sh\necho 'crun version 2.0'\n");
    let p = probe();
    assert_eq!(
        (p.kind, p.version.as_str()),
        (Kind::Crun, "crun version 2.0")
    );
    assert_eq!(ProbeRecord::load(&file).unwrap().kind, Kind::Crun);
    // A record that does not read is ignored (and replaced).
    std::fs::write(&file, "{not json").unwrap();
    assert_eq!(probe().kind, Kind::Crun);
    assert!(ProbeRecord::load(&file).is_some());
    // A binary that is gone is not found, whatever its record says.
    std::fs::remove_file(&bin).unwrap();
    assert!(matches!(
        probe_recorded(&bin, Some(&records)),
        Err(RuncError::NotFound { .. })
    ));
}

#[test]
fn signals_are_named_as_the_runtimes_take_them() {
    assert_eq!(signal_number("TERM").unwrap(), libc::SIGTERM);
    assert_eq!(signal_number("SIGKILL").unwrap(), libc::SIGKILL);
    assert_eq!(signal_number("9").unwrap(), libc::SIGKILL);
    assert!(matches!(
        signal_number("NOPE"),
        Err(RuncError::BadSignal { .. })
    ));
    assert!(signal_number("0").is_err());
}

#[test]
fn a_signal_reaches_an_init_that_catches_or_blocks_it() {
    // TERM (15) is bit 14: 0x4000; INT (2) is bit 1; HUP (1) bit 0; USR1 (10) bit 9.
    let status = "Name:\tberth-init\nSigBlk:\t0000000000000200\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000004002\n";
    assert_eq!(takes(status, libc::SIGTERM), Some(true));
    assert_eq!(takes(status, libc::SIGINT), Some(true));
    assert_eq!(takes(status, libc::SIGUSR1), Some(true));
    assert_eq!(takes(status, libc::SIGHUP), Some(false));
    assert_eq!(takes("Name:\tx\n", libc::SIGTERM), None);
}

#[test]
fn unknown_containers_are_asked_of_the_state_root() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime {
        binary: "/bin/false".into(),
        root: dir.path().to_path_buf(),
        kind: Kind::Crun,
        v1_only_view: false,
    };
    // `false` fails every verb: without state in the root the container is unknown.
    assert!(rt.state("c1").unwrap().is_none());
    assert!(rt.delete("c1").is_ok());
    // Nor does a runtime that does not run know it.
    let gone = Runtime {
        binary: dir.path().join("no-such-runtime"),
        ..rt.clone()
    };
    assert!(gone.state("c1").unwrap().is_none() && gone.delete("c1").is_ok());
    std::fs::create_dir(dir.path().join("c1")).unwrap();
    assert!(matches!(rt.state("c1"), Err(RuncError::Failed { .. })));
    assert!(rt.delete("c1").is_err());
    assert!(rt.kill("c1", "TERM").is_err());
}
