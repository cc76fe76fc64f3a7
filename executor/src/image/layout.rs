//! An OCI image layout on disk: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//! [`resolve`] picks a manifest (by tag, digest, or the only one; nested indexes by
//! platform), reads it and the image config with their digests and sizes verified, and
//! checks every media type. It reads no layer: that is [`super::unpack`]'s job.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::digest::{Digest, Verifying};
use super::reference::{Reference, Selector};
use super::ImageError;

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// The tag annotation on an index entry.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Largest JSON blob (index, manifest, config) read into memory.
const MAX_JSON: u64 = 4 << 20;
/// How deep indexes may nest.
const MAX_DEPTH: usize = 4;

/// How a layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The layer media types berth unpacks.
pub fn layer_compression(media_type: &str) -> Result<Compression, String> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Compression::Zstd),
        m => Err(format!("layer media type {m:?} is not supported")),
    }
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The parts of the image config berth uses (`config` of the OCI image config). Docker
/// writes `null` for absent lists: read as empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(
        rename = "Env",
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub entrypoint: Vec<String>,
    #[serde(
        rename = "Cmd",
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub cmd: Vec<String>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(
        rename = "User",
        default,
        deserialize_with = "null_is_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub user: String,
}

#[derive(Debug, Deserialize)]
struct ConfigBlob {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default, deserialize_with = "null_is_default")]
    config: ImageConfig,
    #[serde(default, deserialize_with = "null_is_default")]
    rootfs: RootFs,
}

/// `rootfs` of the image config: the digest of each layer's uncompressed tar, in order.
#[derive(Debug, Default, Deserialize)]
struct RootFs {
    #[serde(default, deserialize_with = "null_is_default")]
    diff_ids: Vec<Digest>,
}

fn null_is_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An image picked from a layout, its manifest and config verified.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    /// The layout directory.
    pub layout: PathBuf,
    /// The label as given.
    pub reference: String,
    /// The image manifest (after any index).
    pub manifest: Descriptor,
    pub layers: Vec<Descriptor>,
    pub config_digest: Digest,
    /// The config's `rootfs.diff_ids`: each layer's uncompressed sha256, checked at unpack.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diff_ids: Vec<Digest>,
    pub architecture: String,
    pub os: String,
    pub config: ImageConfig,
}

/// Is `dir` an OCI image layout (has `oci-layout`)?
pub fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file()
}

/// The Go architecture name of this machine, as image platforms spell it.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

fn read_json_file(path: &Path) -> Result<Vec<u8>, ImageError> {
    let f = std::fs::File::open(path).map_err(|e| ImageError::io("cannot open", path, e))?;
    let mut buf = Vec::new();
    f.take(MAX_JSON + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ImageError::io("cannot read", path, e))?;
    if buf.len() as u64 > MAX_JSON {
        return Err(ImageError::Invalid(format!(
            "{} is larger than 4 MiB",
            path.display()
        )));
    }
    Ok(buf)
}

/// Reads a small blob, checking its size and digest.
pub fn read_blob(layout: &Path, d: &Descriptor) -> Result<Vec<u8>, ImageError> {
    if d.size > MAX_JSON {
        return Err(ImageError::Invalid(format!(
            "{} {} is {} bytes, more than 4 MiB",
            d.media_type, d.digest, d.size
        )));
    }
    let path = d.digest.blob_path(layout);
    let f = std::fs::File::open(&path).map_err(|e| ImageError::Blob {
        digest: d.digest.clone(),
        why: format!("cannot open {}: {e}", path.display()),
    })?;
    let mut buf = Vec::new();
    Verifying::new(f, d.digest.clone(), d.size)
        .read_to_end(&mut buf)
        .map_err(|e| ImageError::Blob {
            digest: d.digest.clone(),
            why: e.to_string(),
        })?;
    Ok(buf)
}

fn parse<T: for<'de> Deserialize<'de>>(what: &str, data: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(data).map_err(|e| ImageError::Invalid(format!("{what}: {e}")))
}

fn is_index(mt: &str) -> bool {
    mt == MT_OCI_INDEX || mt == MT_DOCKER_LIST
}

fn is_manifest(mt: &str) -> bool {
    mt == MT_OCI_MANIFEST || mt == MT_DOCKER_MANIFEST
}

fn tags(ds: &[Descriptor]) -> String {
    let mut t: Vec<&str> = ds
        .iter()
        .filter_map(|d| d.annotations.get(REF_NAME).map(String::as_str))
        .collect();
    t.sort_unstable();
    t.dedup();
    if t.is_empty() {
        "none".to_string()
    } else {
        t.join(", ")
    }
}

fn platform_matches(d: &Descriptor) -> bool {
    d.platform
        .as_ref()
        .is_some_and(|p| p.os == "linux" && p.architecture == host_architecture())
}

/// Among several descriptors, the one for linux on this architecture.
fn by_platform<'a>(ds: &'a [Descriptor], what: &str) -> Result<&'a Descriptor, ImageError> {
    if let [only] = ds {
        if only.platform.is_none() || platform_matches(only) {
            return Ok(only);
        }
    }
    ds.iter().find(|d| platform_matches(d)).ok_or_else(|| {
        let found: Vec<String> = ds
            .iter()
            .map(|d| match &d.platform {
                Some(p) => format!("{}/{}", p.os, p.architecture),
                None => format!("{} (no platform)", d.digest),
            })
            .collect();
        ImageError::Select(format!(
            "{what}: no manifest for linux/{} (found: {})",
            host_architecture(),
            found.join(", ")
        ))
    })
}

/// Reads `index.json` of a layout.
fn top_index(layout: &Path) -> Result<Vec<Descriptor>, ImageError> {
    let marker: serde_json::Value =
        parse("oci-layout", &read_json_file(&layout.join("oci-layout"))?)?;
    if marker
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ImageError::Invalid(
            "oci-layout has no imageLayoutVersion".into(),
        ));
    }
    let index: Index = parse("index.json", &read_json_file(&layout.join("index.json"))?)?;
    if index.schema_version != 2 {
        return Err(ImageError::Invalid(format!(
            "index.json: schemaVersion {} (expected 2)",
            index.schema_version
        )));
    }
    if let Some(mt) = index.media_type.as_deref().filter(|m| !is_index(m)) {
        return Err(ImageError::Invalid(format!(
            "index.json: media type {mt} is not an index"
        )));
    }
    Ok(index.manifests)
}

/// Finds a descriptor with this digest in the index or the indexes it points to.
fn find_digest(
    layout: &Path,
    ds: &[Descriptor],
    want: &Digest,
    depth: usize,
) -> Result<Option<Descriptor>, ImageError> {
    if let Some(d) = ds.iter().find(|d| &d.digest == want) {
        return Ok(Some(d.clone()));
    }
    if depth >= MAX_DEPTH {
        return Ok(None);
    }
    for d in ds.iter().filter(|d| is_index(&d.media_type)) {
        let sub: Index = parse(&format!("index {}", d.digest), &read_blob(layout, d)?)?;
        if let Some(found) = find_digest(layout, &sub.manifests, want, depth + 1)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// Follows indexes down to an image manifest descriptor.
fn to_manifest(layout: &Path, mut d: Descriptor) -> Result<Descriptor, ImageError> {
    for _ in 0..MAX_DEPTH {
        if is_manifest(&d.media_type) {
            return Ok(d);
        }
        if !is_index(&d.media_type) {
            return Err(ImageError::Unsupported(format!(
                "{} has media type {:?}, not an image manifest or index",
                d.digest, d.media_type
            )));
        }
        let sub: Index = parse(&format!("index {}", d.digest), &read_blob(layout, &d)?)?;
        if sub.schema_version != 2 {
            return Err(ImageError::Invalid(format!(
                "index {}: schemaVersion {}",
                d.digest, sub.schema_version
            )));
        }
        d = by_platform(&sub.manifests, &format!("index {}", d.digest))?.clone();
    }
    Err(ImageError::Invalid(format!(
        "indexes nest deeper than {MAX_DEPTH}"
    )))
}

/// Picks and verifies the image `reference` names in the layout at `layout`.
pub fn resolve(layout: &Path, reference: &Reference) -> Result<Resolved, ImageError> {
    let top = top_index(layout)?;
    let chosen = match &reference.selector {
        Selector::Only => match top.as_slice() {
            [] => return Err(ImageError::Select("index.json lists no manifest".into())),
            [only] => only.clone(),
            many => {
                return Err(ImageError::Select(format!(
                    "the layout holds {} manifests: name one with NAME:TAG (tags: {})",
                    many.len(),
                    tags(many)
                )))
            }
        },
        Selector::Tag(t) => {
            let matching: Vec<Descriptor> = top
                .iter()
                .filter(|d| d.annotations.get(REF_NAME) == Some(t))
                .cloned()
                .collect();
            if matching.is_empty() {
                return Err(ImageError::Select(format!(
                    "no tag {t:?} (tags: {})",
                    tags(&top)
                )));
            }
            by_platform(&matching, &format!("tag {t}"))?.clone()
        }
        Selector::Digest(want) => find_digest(layout, &top, want, 0)?
            .ok_or_else(|| ImageError::Select(format!("{want} is not in index.json")))?,
    };
    let mdesc = to_manifest(layout, chosen)?;
    let manifest: Manifest = parse(
        &format!("manifest {}", mdesc.digest),
        &read_blob(layout, &mdesc)?,
    )?;
    if manifest.schema_version != 2 {
        return Err(ImageError::Invalid(format!(
            "manifest {}: schemaVersion {}",
            mdesc.digest, manifest.schema_version
        )));
    }
    if let Some(mt) = manifest.media_type.as_deref().filter(|m| !is_manifest(m)) {
        return Err(ImageError::Unsupported(format!(
            "manifest {}: media type {mt}",
            mdesc.digest
        )));
    }
    let cmt = manifest.config.media_type.as_str();
    if cmt != MT_OCI_CONFIG && cmt != MT_DOCKER_CONFIG {
        return Err(ImageError::Unsupported(format!(
            "config {}: media type {cmt:?} is not an image config",
            manifest.config.digest
        )));
    }
    for l in &manifest.layers {
        layer_compression(&l.media_type).map_err(ImageError::Unsupported)?;
    }
    let config: ConfigBlob = parse(
        &format!("config {}", manifest.config.digest),
        &read_blob(layout, &manifest.config)?,
    )?;
    if !config.os.is_empty() && config.os != "linux" {
        return Err(ImageError::Unsupported(format!(
            "the image is for {}, not linux",
            config.os
        )));
    }
    if !config.architecture.is_empty() && config.architecture != host_architecture() {
        return Err(ImageError::Unsupported(format!(
            "the image is for {}, this machine is {}",
            config.architecture,
            host_architecture()
        )));
    }
    Ok(Resolved {
        layout: layout.to_path_buf(),
        reference: reference.to_string(),
        manifest: mdesc,
        layers: manifest.layers,
        config_digest: manifest.config.digest,
        diff_ids: config.rootfs.diff_ids,
        architecture: config.architecture,
        os: config.os,
        config: config.config,
    })
}
