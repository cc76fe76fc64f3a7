//! Layouts, selection, verification, unpacking (whiteouts, hostile tars), the cache.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use serde_json::json;

use super::cache::Cache;
use super::digest::Digest;
use super::layout::resolve;
use super::limits::{Budget, Limits};
use super::reference::Reference;
use super::testutil::{gz, tar, Layout, E, TAR, TGZ};
use super::unpack::{apply_layer, Root};
use super::*;

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

fn base_layer() -> Vec<u8> {
    tar(&[
        E::Dir("bin", 0o755),
        E::File("bin/sh", b"#!fake", 0o755),
        E::Dir("etc", 0o755),
        E::File("etc/berth/app.yaml", b"services: {}", 0o644),
    ])
}

fn two_tags(dir: &Path) -> (Layout, serde_json::Value, serde_json::Value) {
    let l = Layout::new(dir);
    let v1 = l.image(
        &[(gz(&base_layer()), TGZ)],
        json!({"Cmd": ["sh"]}),
        Some("v1"),
    );
    let v2 = l.image(
        &[
            (base_layer(), TAR),
            (gz(&tar(&[E::File("v2", b"2", 0o644)])), TGZ),
        ],
        json!({"Env": ["A=1"]}),
        Some("v2"),
    );
    l.index(vec![v1.clone(), v2.clone()]);
    (l, v1, v2)
}

#[test]
fn tags_digests_and_the_only_manifest() {
    let d = tempfile::tempdir().unwrap();
    let (l, v1, v2) = two_tags(d.path());
    let e = resolve(&l.dir, &r("bb")).unwrap_err().to_string();
    assert!(e.contains("2 manifests") && e.contains("v1, v2"), "{e}");
    let a = resolve(&l.dir, &r("bb:v1")).unwrap();
    assert_eq!(a.manifest.digest.as_str(), v1["digest"].as_str().unwrap());
    assert_eq!(a.layers.len(), 1);
    assert_eq!(a.config.cmd, vec!["sh"]);
    let b = resolve(
        &l.dir,
        &r(&format!("bb@{}", v2["digest"].as_str().unwrap())),
    )
    .unwrap();
    assert_eq!(b.layers.len(), 2);
    assert_eq!(b.config.env, vec!["A=1"]);
    let e = resolve(&l.dir, &r("bb:v3")).unwrap_err().to_string();
    assert!(e.contains("no tag \"v3\"") && e.contains("v1, v2"), "{e}");
    let e = resolve(&l.dir, &r(&format!("bb@sha256:{}", "0".repeat(64)))).unwrap_err();
    assert!(e.to_string().contains("not in index.json"), "{e}");
    l.index(vec![v1]);
    assert_eq!(resolve(&l.dir, &r("bb")).unwrap().layers.len(), 1);
}

#[test]
fn nested_indexes_pick_linux_on_this_architecture() {
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(d.path());
    let mut mine = l.image(&[(gz(&base_layer()), TGZ)], json!({}), None);
    mine["platform"] = json!({"os": "linux", "architecture": layout::host_architecture()});
    let mut other = l.image(&[(gz(&base_layer()), TGZ)], json!({"Cmd": ["other"]}), None);
    other["platform"] = json!({"os": "linux", "architecture": "s390x"});
    let nested = l.nested(vec![other.clone(), mine.clone()], Some("multi"));
    l.index(vec![nested]);
    let a = resolve(&l.dir, &r("bb:multi")).unwrap();
    assert_eq!(a.manifest.digest.as_str(), mine["digest"].as_str().unwrap());
    let nested = l.nested(vec![other], Some("multi"));
    l.index(vec![nested]);
    let e = resolve(&l.dir, &r("bb:multi")).unwrap_err().to_string();
    assert!(
        e.contains("no manifest for linux/") && e.contains("linux/s390x"),
        "{e}"
    );
}

#[test]
fn digest_mismatch_and_media_types_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (l, v1, _) = two_tags(d.path());
    // A manifest blob changed on disk.
    let m = Digest::parse(v1["digest"].as_str().unwrap()).unwrap();
    let mut data = std::fs::read(m.blob_path(&l.dir)).unwrap();
    data[10] ^= 1;
    std::fs::write(m.blob_path(&l.dir), &data).unwrap();
    let e = resolve(&l.dir, &r("bb:v1")).unwrap_err().to_string();
    assert!(
        e.contains(m.as_str()) && e.contains("does not match"),
        "{e}"
    );

    for (mt, want) in [
        (
            "application/vnd.oci.image.layer.v1.tar+bzip2",
            "not supported",
        ),
        ("application/x-foo", "not supported"),
    ] {
        let d = tempfile::tempdir().unwrap();
        let l = Layout::new(d.path());
        let i = l.image(&[(base_layer(), mt)], json!({}), Some("x"));
        l.index(vec![i]);
        let e = resolve(&l.dir, &r("bb:x")).unwrap_err();
        assert!(matches!(e, ImageError::Unsupported(_)), "{e}");
        assert!(e.to_string().contains(want), "{e}");
    }
}

#[test]
fn a_corrupt_layer_fails_the_unpack_naming_its_digest_and_leaves_nothing() {
    let d = tempfile::tempdir().unwrap();
    let (l, _, _) = two_tags(&d.path().join("bb"));
    let img = resolve(&l.dir, &r("bb:v2")).unwrap();
    let layer = &img.layers[1];
    let mut data = std::fs::read(layer.digest.blob_path(&l.dir)).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(layer.digest.blob_path(&l.dir), &data).unwrap();
    let cache = Cache::new(d.path().join("cache"));
    let e = cache.ensure(&img).unwrap_err().to_string();
    assert!(
        e.contains(layer.digest.as_str()) && e.contains("does not match"),
        "{e}"
    );
    // Not even the lock file.
    let left: Vec<_> = std::fs::read_dir(&cache.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn apply(root: &Path, entries: &[E<'_>]) -> Result<unpack::LayerStats, unpack::UnpackError> {
    let budget = Budget::new(Limits::default());
    apply_layer(&Root::open(root).unwrap(), &tar(entries)[..], &budget)
}

#[test]
fn whiteouts_and_opaque_directories() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    apply(
        root,
        &[
            E::Dir("a", 0o755),
            E::File("a/x", b"x", 0o644),
            E::File("a/y", b"y", 0o644),
            E::Dir("d", 0o755),
            E::File("d/1", b"1", 0o644),
            E::Dir("d/sub", 0o755),
            E::File("d/sub/2", b"2", 0o644),
            E::File("f", b"f", 0o644),
        ],
    )
    .unwrap();
    let s = apply(
        root,
        &[
            E::File("a/.wh.x", b"", 0o644),
            E::File("a/z", b"z", 0o644),
            // Made in this layer before the opaque marker: kept, with its parent, but
            // not what lower layers left next to it.
            E::File("d/3", b"3", 0o644),
            E::File("d/sub/4", b"4", 0o644),
            E::File("d/.wh..wh..opq", b"", 0o644),
            E::File(".wh.f", b"", 0o644),
            E::File("a/.wh.never-there", b"", 0o644),
            E::File("no/such/dir/.wh.x", b"", 0o644),
        ],
    )
    .unwrap();
    assert_eq!(s.whiteouts, 5);
    assert!(!root.join("no").exists(), "a whiteout makes no directory");
    assert!(!root.join("a/x").exists() && root.join("a/y").exists() && root.join("a/z").exists());
    let mut names: Vec<_> = std::fs::read_dir(root.join("d"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["3", "sub"]);
    let sub: Vec<_> = std::fs::read_dir(root.join("d/sub"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(sub, ["4"]);
    assert!(!root.join("f").exists());
    assert!(!root.join("a/.wh.x").exists());
}

#[test]
fn modes_links_fifos_and_devices() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let s = apply(
        root,
        &[
            E::File("bin/su", b"su", 0o4755),
            E::Dir("tmp", 0o1777),
            E::Symlink("bin/sh", "busybox"),
            E::Hardlink("bin/su2", "bin/su"),
            E::Fifo("run/fifo"),
            E::CharDev("dev/null"),
            // A later entry replaces a directory with a file.
            E::Dir("x", 0o755),
            E::File("x/in", b"", 0o644),
            E::File("x", b"now a file", 0o600),
        ],
    )
    .unwrap();
    assert_eq!(s.skipped, 1);
    let su = std::fs::metadata(root.join("bin/su")).unwrap();
    assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
    assert_eq!(su.mtime(), 1_600_000_000);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        std::fs::metadata(root.join("tmp"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o1777
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert!(std::fs::symlink_metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(!root.join("dev/null").exists());
    assert_eq!(std::fs::read(root.join("x")).unwrap(), b"now a file");
}

/// What a hostile case must end in: refused (the message contains this), or done inside
/// the root (this file, relative to the root, holds "x").
enum Outcome {
    Refused(&'static str),
    Inside(&'static str),
}

#[test]
fn hostile_tars_cannot_write_outside_the_root() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("passwd"), "original").unwrap();
    let out = outside.to_str().unwrap();
    // `outside` as seen from inside a root: the same path under it.
    let mirrored: &'static str = Box::leak(format!("{}/passwd", &out[1..]).into_boxed_str());
    use Outcome::*;
    let cases: Vec<(&str, Vec<E<'_>>, Outcome)> = vec![
        // Docker and containerd take names relative to the root.
        (
            "absolute",
            vec![E::File("/etc/passwd", b"x", 0o644)],
            Inside("etc/passwd"),
        ),
        (
            "dotdot",
            vec![E::File("a/../../outside/passwd", b"x", 0o644)],
            Refused("climbs above the root"),
        ),
        (
            "dotdot inside",
            vec![E::File("a/../b/passwd", b"x", 0o644)],
            Inside("b/passwd"),
        ),
        (
            "symlink then write",
            vec![E::Symlink("etc", out), E::File("etc/passwd", b"x", 0o644)],
            Inside(mirrored),
        ),
        (
            "relative symlink then write",
            vec![
                E::Symlink("etc", "../outside"),
                E::File("etc/passwd", b"x", 0o644),
            ],
            Inside("outside/passwd"),
        ),
        (
            "symlink climbing far",
            vec![
                E::Dir("a", 0o755),
                E::Symlink("a/up", "../../../../.."),
                E::File("a/up/outside/passwd", b"x", 0o644),
            ],
            Inside("outside/passwd"),
        ),
        (
            "hardlink escape",
            vec![E::Hardlink("passwd", "../outside/passwd")],
            Refused("climbs above the root"),
        ),
        (
            "hardlink through a symlink",
            vec![E::Symlink("o", out), E::Hardlink("p", "o/passwd")],
            Refused("is not a file in the image"),
        ),
        (
            "whiteout through a symlink",
            vec![E::Symlink("o", out), E::File("o/.wh.passwd", b"", 0o644)],
            Inside("o"),
        ),
        (
            "opaque through a symlink",
            vec![E::Symlink("o", out), E::File("o/.wh..wh..opq", b"", 0o644)],
            Inside("o"),
        ),
        (
            "symlink loop",
            vec![
                E::Symlink("a", "b"),
                E::Symlink("b", "a"),
                E::File("a/passwd", b"x", 0o644),
            ],
            Refused("more than 40 symlinks"),
        ),
        (
            "symlink to a file",
            vec![
                E::File("f", b"", 0o644),
                E::Symlink("l", "/f"),
                E::File("l/passwd", b"x", 0o644),
            ],
            Refused("f is not a directory"),
        ),
    ];
    for (what, entries, want) in cases {
        let root = d.path().join(what.replace(' ', "-"));
        std::fs::create_dir(&root).unwrap();
        let r = apply(&root, &entries);
        match want {
            Refused(msg) => {
                let e = r.expect_err(what).to_string();
                assert!(e.contains(msg), "{what}: {e}");
            }
            Inside(p) => {
                r.unwrap_or_else(|e| panic!("{what}: {e}"));
                let inside = root.join(p);
                assert!(
                    std::fs::symlink_metadata(&inside).is_ok(),
                    "{what}: {} is missing",
                    inside.display()
                );
                if !p.ends_with('o') {
                    assert_eq!(std::fs::read(&inside).unwrap(), b"x", "{what}");
                }
            }
        }
        assert_eq!(
            std::fs::read_to_string(outside.join("passwd")).unwrap(),
            "original",
            "{what}"
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "{what}");
    }
    // A symlink in an earlier layer, a write through it in a later one: inside the root.
    let root = d.path().join("two-layers");
    std::fs::create_dir(&root).unwrap();
    apply(&root, &[E::Symlink("etc", out)]).unwrap();
    apply(&root, &[E::File("etc/passwd", b"x", 0o644)]).unwrap();
    assert_eq!(std::fs::read(root.join(mirrored)).unwrap(), b"x");
    // Replacing the symlink itself with a file is fine: the link is removed, not followed.
    apply(&root, &[E::File("etc", b"file", 0o644)]).unwrap();
    assert!(root.join("etc").is_file());
    assert_eq!(
        std::fs::read_to_string(outside.join("passwd")).unwrap(),
        "original"
    );
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
}

#[test]
fn images_write_through_their_own_symlinks_inside_the_root() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // usrmerge: `lib -> usr/lib`, `bin -> usr/bin`; Debian: `var/run -> /run`.
    apply(
        &root,
        &[
            E::Dir("usr", 0o755),
            E::Dir("usr/lib", 0o755),
            E::Symlink("lib", "usr/lib"),
            E::Symlink("bin", "usr/bin"),
            E::Dir("var", 0o755),
            E::Symlink("var/run", "/run"),
            // A chain: `l1 -> l2 -> /usr/./lib/../lib`.
            E::Symlink("l2", "/usr/./lib/../lib"),
            E::Symlink("l1", "l2"),
            // The same layer writes through `lib` after making it.
            E::File("lib/early.so", b"early", 0o644),
        ],
    )
    .unwrap();
    apply(
        &root,
        &[
            E::File("lib/libfoo.so", b"foo", 0o755),
            // `usr/bin` does not exist yet: made where the dangling link points.
            E::File("bin/tool", b"tool", 0o755),
            E::File("var/run/app.pid", b"1", 0o644),
            E::File("l1/chained.so", b"chain", 0o644),
            E::Hardlink("lib/hard.so", "lib/libfoo.so"),
        ],
    )
    .unwrap();
    let read = |p: &str| std::fs::read(root.join(p)).unwrap();
    assert_eq!(read("usr/lib/early.so"), b"early");
    assert_eq!(read("usr/lib/libfoo.so"), b"foo");
    assert_eq!(read("usr/bin/tool"), b"tool");
    assert_eq!(read("run/app.pid"), b"1");
    assert_eq!(read("usr/lib/chained.so"), b"chain");
    let meta = |p: &str| std::fs::symlink_metadata(root.join(p)).unwrap();
    assert_eq!(
        meta("usr/lib/hard.so").ino(),
        meta("usr/lib/libfoo.so").ino()
    );
    for l in ["lib", "bin", "var/run", "l1", "l2"] {
        assert!(meta(l).file_type().is_symlink(), "{l} stays a symlink");
    }
    // Whiteouts and opaque markers through the links remove the files they point at.
    apply(
        &root,
        &[
            E::File("lib/.wh.libfoo.so", b"", 0o644),
            E::File("var/run/.wh..wh..opq", b"", 0o644),
        ],
    )
    .unwrap();
    assert!(!root.join("usr/lib/libfoo.so").exists());
    assert!(root.join("usr/lib/hard.so").exists());
    assert_eq!(std::fs::read_dir(root.join("run")).unwrap().count(), 0);
    assert!(meta("var/run").file_type().is_symlink());
}

#[test]
fn concurrent_unpacks_of_one_image_make_one_entry() {
    let d = tempfile::tempdir().unwrap();
    let (l, _, _) = two_tags(&d.path().join("bb"));
    let img = resolve(&l.dir, &r("bb:v2")).unwrap();
    let cache_dir = d.path().join("cache");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (img, cache_dir) = (img.clone(), cache_dir.clone());
            std::thread::spawn(move || Cache::new(cache_dir).ensure(&img).unwrap())
        })
        .collect();
    let entries: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(entries.iter().filter(|e| !e.hit).count(), 1);
    assert!(entries
        .iter()
        .all(|e| e.rootfs.join("v2").is_file() && e.rootfs.join("bin/sh").is_file()));
    let names: Vec<String> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert_eq!(names, [format!("sha256-{}", img.manifest.digest.hex())]);
    assert!(cache_dir.join(&names[0]).join("image.json").is_file());
}

#[test]
fn lookup_finds_layouts_and_directories() {
    let d = tempfile::tempdir().unwrap();
    two_tags(&d.path().join("bb"));
    std::fs::create_dir_all(d.path().join("plain/bin")).unwrap();
    let cache = d.path().join("cache");
    let s = lookup(d.path(), &cache, "bb:v2").unwrap();
    assert!(s.lower().starts_with(&cache));
    assert_eq!(s.config().unwrap().env, vec!["A=1"]);
    assert!(matches!(
        lookup(d.path(), &cache, "plain").unwrap(),
        ImageSource::Dir(_)
    ));
    let e = lookup(d.path(), &cache, "plain:v1")
        .unwrap_err()
        .to_string();
    assert!(e.contains("not an OCI image layout"), "{e}");
    let e = lookup(d.path(), &cache, "nothing").unwrap_err().to_string();
    assert!(e.contains("not a root filesystem"), "{e}");
    assert!(lookup(d.path(), &cache, "../bb").is_err());
}

#[test]
fn the_app_spec_is_found_in_layers_and_hidden_by_whiteouts() {
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(&d.path().join("bb"));
    let with = l.image(&[(gz(&base_layer()), TGZ)], json!({}), Some("with"));
    let hidden = l.image(
        &[
            (gz(&base_layer()), TGZ),
            (tar(&[E::File("etc/berth/.wh.app.yaml", b"", 0)]), TAR),
        ],
        json!({}),
        Some("hidden"),
    );
    let opaque = l.image(
        &[
            (gz(&base_layer()), TGZ),
            (tar(&[E::File("etc/.wh..wh..opq", b"", 0)]), TAR),
        ],
        json!({}),
        Some("opaque"),
    );
    l.index(vec![with, hidden, opaque]);
    let cache = d.path().join("cache");
    let has = |t: &str| {
        lookup(d.path(), &cache, &format!("bb:{t}"))
            .unwrap()
            .has_file("etc/berth/app.yaml")
            .unwrap()
    };
    assert!(has("with"));
    assert!(!has("hidden"));
    assert!(!has("opaque"));
}

#[test]
fn entrypoint_and_cmd_become_one_quoted_line() {
    let c = ImageConfig {
        entrypoint: vec!["/bin/server".into(), "--name".into()],
        cmd: vec!["it's me".into(), "$HOME".into()],
        ..Default::default()
    };
    assert_eq!(
        command_line(&c).unwrap(),
        r#"/bin/server --name 'it'\''s me' '$HOME'"#
    );
    assert_eq!(command_line(&ImageConfig::default()), None);
}

#[test]
fn zstd_layers_unpack_and_are_verified() {
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};
    const ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(&d.path().join("bb"));
    let top = tar(&[E::File("etc/zst", b"from a zstd layer", 0o644)]);
    let i = l.image(
        &[
            (gz(&base_layer()), TGZ),
            (compress_to_vec(&top[..], CompressionLevel::Fastest), ZST),
        ],
        json!({}),
        Some("z"),
    );
    l.index(vec![i]);
    let img = resolve(&l.dir, &r("bb:z")).unwrap();
    let e = Cache::new(d.path().join("cache")).ensure(&img).unwrap();
    assert_eq!(
        std::fs::read(e.rootfs.join("etc/zst")).unwrap(),
        b"from a zstd layer"
    );
    assert!(e.rootfs.join("bin/sh").is_file());
    // Damaged: named by its digest, nothing cached.
    let layer = &img.layers[1];
    let mut data = std::fs::read(layer.digest.blob_path(&l.dir)).unwrap();
    let n = data.len();
    data[n - 3] ^= 0x10;
    std::fs::write(layer.digest.blob_path(&l.dir), &data).unwrap();
    let err = Cache::new(d.path().join("cache2"))
        .ensure(&img)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(layer.digest.as_str()) && err.contains("does not match"),
        "{err}"
    );
}

#[test]
fn prune_keeps_what_checkpoints_and_mounts_use() {
    use crate::task::steps::{Checkpoint, Outputs};
    let d = tempfile::tempdir().unwrap();
    let cache = Cache::new(d.path().join("cache"));
    for n in ["sha256-aa", "sha256-bb", "sha256-cc", ".tmp-sha256-dd-1-0"] {
        std::fs::create_dir_all(cache.dir.join(n).join("rootfs")).unwrap();
    }
    std::fs::write(cache.dir.join(".sha256-aa.lock"), "").unwrap();
    // Left by an older berth: no entry any more.
    std::fs::write(cache.dir.join(".sha256-ee.lock"), "").unwrap();
    let state = d.path().join("state");
    std::fs::create_dir_all(state.join("berth-t1")).unwrap();
    Checkpoint {
        container_id: "berth-t1".into(),
        steps: vec![],
        outputs: Outputs {
            image: Some(cache.dir.join("sha256-aa/rootfs")),
            ..Outputs::default()
        },
    }
    .save(&state.join("berth-t1"))
    .unwrap();
    let mut used = prune::named_by_checkpoints(&state);
    let mountinfo = format!(
        "36 35 0:52 / /x/rootfs rw,relatime - overlay overlay rw,lowerdir={}/sha256-bb/rootfs,upperdir=/u,workdir=/w\n\
         37 35 8:1 / /y rw - ext4 /dev/sda1 rw",
        cache.dir.display()
    );
    used.extend(prune::overlay_lowers(&mountinfo));
    let hour = std::time::Duration::from_secs(3600);
    let young = prune::prune(&cache, &used, hour, false).unwrap();
    assert!(
        young.removed.is_empty(),
        "entries used within the minimum age stay"
    );
    // A lock file with no entry goes at once (nobody holds it).
    assert_eq!(young.locks, [cache.dir.join(".sha256-ee.lock")]);
    let zero = std::time::Duration::ZERO;
    let dry = prune::prune(&cache, &used, zero, true).unwrap();
    assert_eq!(
        dry.kept,
        [cache.dir.join("sha256-aa"), cache.dir.join("sha256-bb")]
    );
    assert!(
        cache.dir.join("sha256-cc").exists(),
        "a dry run removes nothing"
    );
    let done = prune::prune(&cache, &used, zero, false).unwrap();
    assert_eq!(done.removed, dry.removed);
    assert_eq!(
        done.removed,
        [
            cache.dir.join(".tmp-sha256-dd-1-0"),
            cache.dir.join("sha256-cc")
        ]
    );
    assert!(cache.dir.join("sha256-aa/rootfs").is_dir() && cache.dir.join("sha256-bb").is_dir());
    assert!(!cache.dir.join("sha256-cc").exists());
    // The removed entries' lock files went with them; kept ones keep theirs.
    let mut left: Vec<String> = std::fs::read_dir(&cache.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, [".sha256-aa.lock", "sha256-aa", "sha256-bb"]);
}

#[test]
fn docker_v2s2_manifests_and_layers_work() {
    use layout::{MT_DOCKER_CONFIG, MT_DOCKER_MANIFEST};
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(&d.path().join("bb"));
    let layer = l.blob(
        &gz(&base_layer()),
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    );
    let cfg = json!({"architecture": layout::host_architecture(), "os": "linux",
        "config": {"Cmd": ["sh"], "Env": null},
        "rootfs": {"type": "layers", "diff_ids": [Digest::of(&base_layer()).as_str()]}});
    let cfg = l.blob(&serde_json::to_vec(&cfg).unwrap(), MT_DOCKER_CONFIG);
    let m = json!({"schemaVersion": 2, "mediaType": MT_DOCKER_MANIFEST, "config": cfg, "layers": [layer]});
    let mut m = l.blob(&serde_json::to_vec(&m).unwrap(), MT_DOCKER_MANIFEST);
    m["annotations"] = json!({layout::REF_NAME: "d"});
    l.index(vec![m]);
    let img = resolve(&l.dir, &r("bb")).unwrap();
    assert_eq!(img.config.cmd, ["sh"]);
    let e = Cache::new(d.path().join("cache")).ensure(&img).unwrap();
    assert!(e.rootfs.join("etc/berth/app.yaml").is_file());
}

/// Only the cache's lock-free leftovers: nothing at all.
fn assert_cache_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn diff_ids_are_checked_against_the_uncompressed_layers() {
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(&d.path().join("bb"));
    let top = tar(&[E::File("etc/top", b"top", 0o644)]);
    let layers = [(gz(&base_layer()), TGZ), (gz(&top), TGZ)];
    // The second diff_id is the compressed blob's digest: a classic mistake.
    let wrong = Digest::of(&layers[1].0);
    let bad = l.image_with_diff_ids(
        &layers,
        json!({}),
        Some("bad"),
        vec![
            Digest::of(&base_layer()).as_str().into(),
            wrong.as_str().into(),
        ],
    );
    let short = l.image_with_diff_ids(
        &layers,
        json!({}),
        Some("short"),
        vec![Digest::of(&base_layer()).as_str().into()],
    );
    let good = l.image(&layers, json!({}), Some("good"));
    l.index(vec![bad, short, good]);
    let img = resolve(&l.dir, &r("bb:bad")).unwrap();
    let cache = Cache::new(d.path().join("cache"));
    let e = cache.ensure(&img).unwrap_err();
    assert!(matches!(e, ImageError::DiffId { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains(img.layers[1].digest.as_str())
            && e.contains(Digest::of(&top).as_str())
            && e.contains(wrong.as_str())
            && e.contains("rootfs.diff_ids"),
        "{e}"
    );
    assert_cache_empty(&cache.dir);
    // The app spec scan checks them too.
    let src = ImageSource::Oci {
        image: Box::new(img),
        rootfs: cache.dir.join("none"),
    };
    let e = src.has_file("etc/berth/app.yaml").unwrap_err().to_string();
    assert!(e.contains("rootfs.diff_ids"), "{e}");
    let img = resolve(&l.dir, &r("bb:short")).unwrap();
    let e = cache.ensure(&img).unwrap_err().to_string();
    assert!(
        e.contains("rootfs.diff_ids lists 1 layers, the manifest 2"),
        "{e}"
    );
    assert_cache_empty(&cache.dir);
    let img = resolve(&l.dir, &r("bb:good")).unwrap();
    assert!(cache.ensure(&img).unwrap().rootfs.join("etc/top").is_file());
}

#[test]
fn a_gzip_bomb_or_too_many_entries_stop_at_the_limits() {
    let d = tempfile::tempdir().unwrap();
    let l = Layout::new(&d.path().join("bb"));
    let zeros = vec![0u8; 8 << 20];
    let bomb = gz(&tar(&[E::File("zeros", &zeros, 0o644)]));
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let many: Vec<String> = (0..50).map(|i| format!("f{i}")).collect();
    let many = tar(&many
        .iter()
        .map(|n| E::File(n, b"", 0o644))
        .collect::<Vec<_>>());
    let i = l.image(
        &[(gz(&base_layer()), TGZ), (bomb, TGZ)],
        json!({}),
        Some("bomb"),
    );
    let j = l.image(&[(many, TAR)], json!({}), Some("many"));
    l.index(vec![i, j]);
    let limits = Limits {
        max_bytes: 4 << 20,
        max_entries: 20,
    };
    let cache = Cache::new(d.path().join("cache")).with_limits(limits);
    let img = resolve(&l.dir, &r("bb:bomb")).unwrap();
    let e = cache.ensure(&img).unwrap_err();
    assert!(matches!(e, ImageError::TooLarge { .. }), "{e}");
    let e = e.to_string();
    assert!(
        e.contains(img.layers[1].digest.as_str())
            && e.contains("more than 4194304 bytes")
            && e.contains(limits::MAX_BYTES_VAR),
        "{e}"
    );
    assert_cache_empty(&cache.dir);
    let img = resolve(&l.dir, &r("bb:many")).unwrap();
    let e = cache.ensure(&img).unwrap_err().to_string();
    assert!(
        e.contains("more than 20 tar entries") && e.contains(limits::MAX_ENTRIES_VAR),
        "{e}"
    );
    assert_cache_empty(&cache.dir);
    // Under the defaults both unpack.
    let cache = Cache::new(d.path().join("cache"));
    assert!(cache.ensure(&img).unwrap().rootfs.join("f49").is_file());
    let img = resolve(&l.dir, &r("bb:bomb")).unwrap();
    let e = cache.ensure(&img).unwrap();
    assert_eq!(
        std::fs::metadata(e.rootfs.join("zeros")).unwrap().len(),
        8 << 20
    );
}

#[test]
fn has_file_in_an_unpacked_image_resolves_symlinks_inside_it() {
    let d = tempfile::tempdir().unwrap();
    let outside = d.path().join("outside.yaml");
    std::fs::write(&outside, "host").unwrap();
    let root = d.path().join("root");
    std::fs::create_dir_all(root.join("conf")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("conf/app.yaml"), "image").unwrap();
    std::os::unix::fs::symlink("/conf", root.join("etc/berth")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("etc/host.yaml")).unwrap();
    std::os::unix::fs::symlink("../../../conf/app.yaml", root.join("etc/rel.yaml")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("etc/loop")).unwrap();
    let src = ImageSource::Dir(root);
    assert!(src.has_file("etc/berth/app.yaml").unwrap());
    assert!(src.has_file("/etc/rel.yaml").unwrap());
    // The host's file is not the image's.
    assert!(!src.has_file("etc/host.yaml").unwrap());
    assert!(!src.has_file("etc/loop").unwrap());
    assert!(!src.has_file("conf").unwrap());
}
