//! OCI image layouts for tests, built the way `skopeo copy ... oci:DIR:TAG` lays them
//! out: `oci-layout`, `index.json` with `org.opencontainers.image.ref.name` tags, and
//! sha256-named blobs (gzip-compressed tar layers, an image config, manifests).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const LAYER_TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What a hand-made layer holds.
pub enum Entry<'a> {
    File(&'a str, &'a [u8], u32),
    Dir(&'a str, u32),
    /// `.wh.NAME` next to `path`'s file name: deletes `path` from lower layers.
    Whiteout(&'a str),
    /// `DIR/.wh..wh..opq`: hides everything lower layers put in `DIR`.
    Opaque(&'a str),
    /// A symlink `path -> target`.
    Symlink(&'a str, &'a str),
}

/// `sha256:<hex>` of some bytes.
pub fn digest(data: &[u8]) -> String {
    let h = Sha256::digest(data);
    format!(
        "sha256:{}",
        h.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    e.finish()
}

/// A tar of a directory tree (symlinks kept as symlinks, modes, owners and times kept).
pub fn tar_dir(root: &Path) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", root)?;
    b.into_inner()
}

/// A tar of hand-made entries.
pub fn tar_entries(entries: &[Entry<'_>]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>,
               kind: tar::EntryType,
               path: String,
               data: &[u8],
               mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data)
    };
    for e in entries {
        match e {
            Entry::File(p, d, m) => add(&mut b, tar::EntryType::Regular, p.to_string(), d, *m)?,
            Entry::Dir(p, m) => add(&mut b, tar::EntryType::Directory, p.to_string(), b"", *m)?,
            Entry::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let wh = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                add(&mut b, tar::EntryType::Regular, wh, b"", 0o644)?
            }
            Entry::Symlink(p, target) => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_uid(0);
                h.set_gid(0);
                h.set_size(0);
                h.set_mtime(1_700_000_000);
                b.append_link(&mut h, p, target)?
            }
            Entry::Opaque(d) => add(
                &mut b,
                tar::EntryType::Regular,
                format!("{d}/.wh..wh..opq"),
                b"",
                0o644,
            )?,
        }
    }
    b.into_inner()
}

/// An image layout being written.
pub struct OciLayout {
    pub dir: PathBuf,
    manifests: Vec<Value>,
}

impl OciLayout {
    pub fn create(dir: &Path) -> std::io::Result<OciLayout> {
        std::fs::create_dir_all(dir.join("blobs/sha256"))?;
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let l = OciLayout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        };
        l.write_index()?;
        Ok(l)
    }

    /// Stores a blob; returns its descriptor.
    pub fn blob(&self, data: &[u8], media_type: &str) -> std::io::Result<Value> {
        let d = digest(data);
        std::fs::write(self.blob_path(&d), data)?;
        Ok(json!({"mediaType": media_type, "digest": d, "size": data.len()}))
    }

    /// Where a blob is.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    /// A gzip layer of a directory tree.
    pub fn layer_from_dir(&self, root: &Path) -> std::io::Result<Value> {
        self.blob(&gzip(&tar_dir(root)?)?, LAYER_TGZ)
    }

    /// A gzip layer of hand-made entries.
    pub fn layer(&self, entries: &[Entry<'_>]) -> std::io::Result<Value> {
        self.blob(&gzip(&tar_entries(entries)?)?, LAYER_TGZ)
    }

    /// The digest of a stored layer's uncompressed tar (its `diff_id`).
    pub fn diff_id(&self, layer: &Value) -> std::io::Result<String> {
        let d = layer["digest"].as_str().unwrap_or_default();
        let data = std::fs::read(self.blob_path(d))?;
        if layer["mediaType"].as_str() == Some(LAYER_TGZ) {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(&data[..]).read_to_end(&mut out)?;
            return Ok(digest(&out));
        }
        Ok(digest(&data))
    }

    /// An image (config `config` = the `config` object: Env, Cmd, WorkingDir, ...) over
    /// `layers`, listed in index.json with `tag`, with the config's `rootfs.diff_ids`.
    /// Returns the manifest descriptor.
    pub fn add_image(
        &mut self,
        tag: &str,
        layers: &[Value],
        config: Value,
    ) -> std::io::Result<Value> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let diff_ids = layers
            .iter()
            .map(|l| self.diff_id(l))
            .collect::<std::io::Result<Vec<String>>>()?;
        let cfg = json!({
            "architecture": arch, "os": "linux", "config": config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let cfg = self.blob(&serde_json::to_vec(&cfg)?, CONFIG)?;
        let m = json!({"schemaVersion": 2, "mediaType": MANIFEST, "config": cfg, "layers": layers});
        let mut d = self.blob(&serde_json::to_vec(&m)?, MANIFEST)?;
        d["annotations"] = json!({REF_NAME: tag});
        self.manifests.push(d.clone());
        self.write_index()?;
        Ok(d)
    }

    fn write_index(&self) -> std::io::Result<()> {
        let i = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": self.manifests});
        std::fs::write(self.dir.join("index.json"), serde_json::to_vec_pretty(&i)?)
    }
}
