//! Builders for unit tests: tar layers (hostile ones too) and OCI layouts.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::digest::Digest;
use super::layout::{MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_MANIFEST};

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
    CharDev(&'a str),
}

fn header(kind: tar::EntryType, path: &str, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    // Written raw, so tests can make paths a careful writer would refuse.
    let name = &mut h.as_old_mut().name;
    name.fill(0);
    name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h
}

fn set_link(h: &mut tar::Header, target: &str) {
    let l = &mut h.as_old_mut().linkname;
    l.fill(0);
    l[..target.len()].copy_from_slice(target.as_bytes());
}

pub fn tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (mut h, data): (tar::Header, &[u8]) = match e {
            E::Dir(p, m) => (header(tar::EntryType::Directory, p, *m, 0), b""),
            E::File(p, d, m) => (header(tar::EntryType::Regular, p, *m, d.len() as u64), d),
            E::Symlink(p, t) => {
                let mut h = header(tar::EntryType::Symlink, p, 0o777, 0);
                set_link(&mut h, t);
                (h, b"")
            }
            E::Hardlink(p, t) => {
                let mut h = header(tar::EntryType::Link, p, 0o644, 0);
                set_link(&mut h, t);
                (h, b"")
            }
            E::Fifo(p) => (header(tar::EntryType::Fifo, p, 0o640, 0), b""),
            E::CharDev(p) => (header(tar::EntryType::Char, p, 0o666, 0), b""),
        };
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A layer blob's uncompressed tar (as is for an unknown media type).
pub fn uncompressed(data: &[u8], media_type: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if media_type.ends_with("gzip") {
        flate2::read::MultiGzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else if media_type.ends_with("zstd") {
        super::zstd::ZstdFrames::new(data)
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = data.to_vec();
    }
    out
}

pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn blob(&self, data: &[u8], media_type: &str) -> Value {
        let d = Digest::of(data);
        std::fs::write(d.blob_path(&self.dir), data).unwrap();
        json!({"mediaType": media_type, "digest": d.as_str(), "size": data.len()})
    }

    /// An image manifest: its descriptor (tagged when `tag` is given). The config's
    /// `rootfs.diff_ids` are the layers' uncompressed digests.
    pub fn image(&self, layers: &[(Vec<u8>, &str)], config: Value, tag: Option<&str>) -> Value {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|(d, mt)| Digest::of(&uncompressed(d, mt)).as_str().to_string())
            .collect();
        self.image_with_diff_ids(layers, config, tag, diff_ids)
    }

    /// [`Layout::image`] with these `rootfs.diff_ids`.
    pub fn image_with_diff_ids(
        &self,
        layers: &[(Vec<u8>, &str)],
        config: Value,
        tag: Option<&str>,
        diff_ids: Vec<String>,
    ) -> Value {
        let layers: Vec<Value> = layers.iter().map(|(d, mt)| self.blob(d, mt)).collect();
        let mut cfg = json!({"architecture": super::layout::host_architecture(), "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        cfg["config"] = config;
        let cfg = self.blob(&serde_json::to_vec(&cfg).unwrap(), MT_OCI_CONFIG);
        let m = json!({"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "config": cfg, "layers": layers});
        let mut d = self.blob(&serde_json::to_vec(&m).unwrap(), MT_OCI_MANIFEST);
        if let Some(t) = tag {
            d["annotations"] = json!({super::layout::REF_NAME: t});
        }
        d
    }

    pub fn index(&self, manifests: Vec<Value>) {
        let i = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec(&i).unwrap()).unwrap();
    }

    /// A nested index blob; returns its descriptor.
    pub fn nested(&self, manifests: Vec<Value>, tag: Option<&str>) -> Value {
        let i = json!({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests});
        let mut d = self.blob(&serde_json::to_vec(&i).unwrap(), MT_OCI_INDEX);
        if let Some(t) = tag {
            d["annotations"] = json!({super::layout::REF_NAME: t});
        }
        d
    }
}
