//! Task images: a root filesystem directory, or an OCI image layout unpacked into a
//! shared cache.
//!
//! - `reference`: the `berth.image` label (`NAME`, `NAME:TAG`, `NAME@sha256:<hex>`).
//! - `digest`: sha256 digests and readers that verify size and digest as they read.
//! - `layout`: `oci-layout` + `index.json` + blobs: picks and verifies a manifest and
//!   its config (cheap: no layer is read), checks media types.
//! - `unpack`: applies layer tars safely (symlinks resolved inside the root, whiteouts,
//!   no devices).
//! - `cache`: `<cache>/sha256-<hex>/rootfs`, unpacked atomically under a lock.
//! - `lock`: the per-entry `flock`, its file removed with its entry.
//! - `limits`: caps on unpacked bytes and entries; each layer's `diff_id` measured.
//! - `zstd`: multi-frame zstd layers (pure-Rust `ruzstd`).
//! - `prune`: removes cache entries no checkpoint and no overlay mount uses.
//! - `budget`: evicts unused entries, least recently used first, until the cache fits a
//!   size budget (the agent's GC).
//!
//! [`lookup`] runs during task validation; [`ImageSource::prepare`] in the `image`
//! preparation step.

pub mod budget;
pub mod cache;
pub mod digest;
pub mod layout;
pub mod limits;
pub mod lock;
pub mod prune;
pub mod reference;
pub mod unpack;
pub mod zstd;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

use std::path::{Path, PathBuf};

use digest::Digest;
pub use layout::{ImageConfig, Resolved};
use reference::{Reference, Selector};

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] reference::ReferenceError),
    #[error("{path}: {why}")]
    Path { path: PathBuf, why: String },
    #[error("blob {digest}: {why}")]
    Blob { digest: Digest, why: String },
    #[error("layer {digest}: {err}")]
    Layer {
        digest: Digest,
        #[source]
        err: unpack::UnpackError,
    },
    #[error("invalid image layout: {0}")]
    Invalid(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Select(String),
    #[error("image cache: {0}")]
    Cache(String),
    #[error("layer {layer}: {why}")]
    TooLarge { layer: Digest, why: String },
    #[error("layer {layer}: uncompressed, its digest is {got}, but the image config's rootfs.diff_ids says {want}")]
    DiffId {
        layer: Digest,
        got: Digest,
        want: Digest,
    },
    #[error("setting {0}")]
    Setting(String),
}

impl ImageError {
    pub fn io(what: &str, path: &Path, err: std::io::Error) -> ImageError {
        ImageError::Path {
            path: path.to_path_buf(),
            why: format!("{what}: {err}"),
        }
    }
}

/// Where a task's root filesystem comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// A root filesystem directory, used as it is.
    Dir(PathBuf),
    /// An OCI image, resolved; unpacked into `rootfs` (a cache entry) by the image step.
    Oci {
        image: Box<Resolved>,
        rootfs: PathBuf,
    },
}

impl From<&str> for ImageSource {
    fn from(dir: &str) -> Self {
        ImageSource::Dir(dir.into())
    }
}

impl From<PathBuf> for ImageSource {
    fn from(dir: PathBuf) -> Self {
        ImageSource::Dir(dir)
    }
}

impl ImageSource {
    /// The directory that becomes the overlay's lower layer.
    pub fn lower(&self) -> &Path {
        match self {
            ImageSource::Dir(d) => d,
            ImageSource::Oci { rootfs, .. } => rootfs,
        }
    }

    /// The image config, for an OCI image.
    pub fn config(&self) -> Option<&ImageConfig> {
        match self {
            ImageSource::Dir(_) => None,
            ImageSource::Oci { image, .. } => Some(&image.config),
        }
    }

    /// Is this file (a path relative to the root) in the image? An OCI image not yet
    /// unpacked is answered by reading its layers (verified, whiteouts applied).
    pub fn has_file(&self, rel: &str) -> Result<bool, ImageError> {
        if self.lower().is_dir() {
            // Resolved inside the image (an absolute symlink names the image's file, not
            // the host's), as the container will see it.
            let rel = unpack::clean(Path::new(rel))
                .map_err(|why| ImageError::Select(format!("{rel}: {why}")))?;
            let root = unpack::Root::open(self.lower())
                .map_err(|e| ImageError::io("cannot open", self.lower(), e))?;
            return Ok(root.is_file(&rel));
        }
        match self {
            ImageSource::Dir(_) => Ok(false),
            ImageSource::Oci { image, .. } => scan::has_file(image, rel),
        }
    }

    /// Unpacks an OCI image into the cache (a no-op for a directory or a cache hit).
    /// Returns whether it was found in the cache.
    pub fn prepare(&self, cache_dir: &Path) -> Result<bool, ImageError> {
        match self {
            ImageSource::Dir(_) => Ok(true),
            ImageSource::Oci { image, .. } => {
                let entry = cache::Cache::new(cache_dir)
                    .with_limits(limits::Limits::from_env()?)
                    .ensure(image)?;
                Ok(entry.hit)
            }
        }
    }
}

mod scan;

/// Resolves a `berth.image` label value: `<images>/NAME` is an OCI image layout (with
/// `oci-layout`) or a root filesystem directory (only as a plain `NAME`).
pub fn lookup(images: &Path, cache_dir: &Path, label: &str) -> Result<ImageSource, ImageError> {
    let reference = Reference::parse(label)?;
    let dir = images.join(&reference.name);
    if layout::is_layout(&dir) {
        let image = layout::resolve(&dir, &reference)?;
        let rootfs = cache::Cache::new(cache_dir).rootfs(&image.manifest.digest);
        return Ok(ImageSource::Oci {
            image: Box::new(image),
            rootfs,
        });
    }
    if reference.selector != Selector::Only {
        return Err(ImageError::Path {
            path: dir,
            why: "is not an OCI image layout (no oci-layout file): a tag or digest needs one"
                .into(),
        });
    }
    if dir.join("bin").is_dir() || dir.join("usr").is_dir() {
        return Ok(ImageSource::Dir(dir));
    }
    Err(ImageError::Path {
        path: dir,
        why: "is not a root filesystem directory (no bin/ or usr/) nor an OCI image layout (no oci-layout)".into(),
    })
}

/// Single-quotes one word for `sh`.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The image's Entrypoint + Cmd as one shell line (each word quoted), or `None`.
pub fn command_line(c: &ImageConfig) -> Option<String> {
    let words: Vec<String> = c
        .entrypoint
        .iter()
        .chain(&c.cmd)
        .map(|w| sh_quote(w))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}
