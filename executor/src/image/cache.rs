//! The shared cache of unpacked images, keyed by manifest digest:
//! `<cache>/sha256-<hex>/rootfs` (the read-only lower layer of every task's overlay) and
//! `<cache>/sha256-<hex>/image.json` (what was unpacked, for operators).
//!
//! An entry is unpacked into `<cache>/.tmp-sha256-<hex>-<pid>-<n>` and renamed into place,
//! under an exclusive `flock` on `<cache>/.sha256-<hex>.lock`: two executors unpacking
//! the same image at once serialize, and the second finds the entry made (a cache hit).
//! An entry that exists is complete; a crashed unpack leaves only a temporary directory,
//! removed by the next unpack of that image. A failed first unpack also removes the lock
//! file (see [`super::lock`]), so only entries that exist keep one.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::digest::{Digest, Verifying};
use super::layout::{layer_compression, Compression, Descriptor, Resolved};
use super::limits::{Budget, Limits, Measured};
use super::lock::EntryLock;
use super::unpack::{apply_layer, LayerStats, Root, UnpackError};
use super::ImageError;

static TMP_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    pub dir: PathBuf,
    /// Caps on what one image may unpack to.
    pub limits: Limits,
}

/// The result of [`Cache::ensure`].
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub rootfs: PathBuf,
    /// Found already unpacked.
    pub hit: bool,
    /// Per layer, when unpacked now.
    pub layers: Vec<LayerStats>,
}

impl Cache {
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache {
            dir: dir.into(),
            limits: Limits::default(),
        }
    }

    pub fn with_limits(self, limits: Limits) -> Cache {
        Cache { limits, ..self }
    }

    fn key(manifest: &Digest) -> String {
        format!("sha256-{}", manifest.hex())
    }

    pub fn entry(&self, manifest: &Digest) -> PathBuf {
        self.dir.join(Self::key(manifest))
    }

    /// The lock file of an entry (or of its key, `sha256-<hex>`).
    pub fn lock_path(&self, manifest: &Digest) -> PathBuf {
        self.lock_path_of(&Self::key(manifest))
    }

    pub fn lock_path_of(&self, key: &str) -> PathBuf {
        self.dir.join(format!(".{key}.lock"))
    }

    pub fn rootfs(&self, manifest: &Digest) -> PathBuf {
        self.entry(manifest).join("rootfs")
    }

    /// Unpacked already?
    pub fn contains(&self, manifest: &Digest) -> bool {
        self.rootfs(manifest).is_dir()
    }

    fn io(&self, what: &str, path: &Path, err: io::Error) -> ImageError {
        ImageError::Cache(format!("{what} {}: {err}", path.display()))
    }

    /// Makes sure the image is unpacked; returns its rootfs.
    pub fn ensure(&self, image: &Resolved) -> Result<Entry, ImageError> {
        let digest = &image.manifest.digest;
        std::fs::create_dir_all(&self.dir).map_err(|e| self.io("cannot create", &self.dir, e))?;
        let lock_path = self.lock_path(digest);
        // Released when dropped, on every return path.
        let lock =
            EntryLock::lock(&lock_path).map_err(|e| self.io("cannot lock", &lock_path, e))?;
        let rootfs = self.rootfs(digest);
        if rootfs.is_dir() {
            touch(&self.entry(digest));
            return Ok(Entry {
                rootfs,
                hit: true,
                layers: vec![],
            });
        }
        self.remove_stale(digest);
        let tmp = self.dir.join(format!(
            ".tmp-{}-{}-{}",
            Self::key(digest),
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let result = self.unpack_into(image, &tmp);
        match result {
            Ok(layers) => {
                let entry = self.entry(digest);
                if let Err(e) = std::fs::rename(&tmp, &entry) {
                    let _ = std::fs::remove_dir_all(&tmp);
                    lock.retire();
                    return Err(self.io("cannot rename into", &entry, e));
                }
                drop(lock);
                Ok(Entry {
                    rootfs,
                    hit: false,
                    layers,
                })
            }
            Err(e) => {
                // Nothing of this image is in the cache: neither is its lock file.
                let _ = std::fs::remove_dir_all(&tmp);
                lock.retire();
                Err(e)
            }
        }
    }

    /// Removes temporary dirs of this image left by a crashed unpack (we hold its lock).
    fn remove_stale(&self, digest: &Digest) {
        let prefix = format!(".tmp-{}-", Self::key(digest));
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    tracing::info!(path = %e.path().display(), "removing a stale partial unpack");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    fn unpack_into(&self, image: &Resolved, tmp: &Path) -> Result<Vec<LayerStats>, ImageError> {
        let root_dir = tmp.join("rootfs");
        std::fs::create_dir_all(&root_dir).map_err(|e| self.io("cannot create", &root_dir, e))?;
        std::fs::set_permissions(tmp, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| self.io("cannot chmod", tmp, e))?;
        std::fs::set_permissions(
            &root_dir,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .map_err(|e| self.io("cannot chmod", &root_dir, e))?;
        let root = Root::open(&root_dir).map_err(|e| self.io("cannot open", &root_dir, e))?;
        if image.diff_ids.len() != image.layers.len() {
            return Err(ImageError::Invalid(format!(
                "config {}: rootfs.diff_ids lists {} layers, the manifest {}",
                image.config_digest,
                image.diff_ids.len(),
                image.layers.len()
            )));
        }
        let budget = Budget::new(self.limits);
        let mut stats = Vec::new();
        for (layer, want) in image.layers.iter().zip(&image.diff_ids) {
            let (s, got) = with_layer(&image.layout, layer, &budget, |r| {
                apply_layer(&root, r, &budget)
            })?;
            check_diff_id(layer, &got, want)?;
            stats.push(s);
        }
        let meta =
            serde_json::to_vec_pretty(image).map_err(|e| ImageError::Cache(e.to_string()))?;
        let meta_path = tmp.join("image.json");
        std::fs::write(&meta_path, meta).map_err(|e| self.io("cannot write", &meta_path, e))?;
        Ok(stats)
    }
}

/// Checks a whole blob's size and digest.
pub fn verify_blob(layout: &Path, d: &Descriptor) -> Result<(), ImageError> {
    let path = d.digest.blob_path(layout);
    let f = File::open(&path).map_err(|e| ImageError::Blob {
        digest: d.digest.clone(),
        why: format!("cannot open {}: {e}", path.display()),
    })?;
    Verifying::new(
        BufReader::with_capacity(1 << 16, f),
        d.digest.clone(),
        d.size,
    )
    .finish()
    .map_err(|e| ImageError::Blob {
        digest: d.digest.clone(),
        why: e.to_string(),
    })
}

/// Compares a layer's measured uncompressed digest with the config's `diff_id`.
pub fn check_diff_id(layer: &Descriptor, got: &Digest, want: &Digest) -> Result<(), ImageError> {
    if got == want {
        return Ok(());
    }
    Err(ImageError::DiffId {
        layer: layer.digest.clone(),
        got: got.clone(),
        want: want.clone(),
    })
}

/// Opens a layer blob as a verified, decompressed tar stream and hands it to `f`; the
/// whole blob is read (and so verified) before this returns `Ok`, with the digest of the
/// whole uncompressed stream (its `diff_id`). The uncompressed bytes count against
/// `budget`.
pub fn with_layer<T>(
    layout: &Path,
    layer: &Descriptor,
    budget: &Budget,
    f: impl FnOnce(&mut dyn io::Read) -> Result<T, UnpackError>,
) -> Result<(T, Digest), ImageError> {
    let comp = layer_compression(&layer.media_type).map_err(ImageError::Unsupported)?;
    let path = layer.digest.blob_path(layout);
    let file = File::open(&path).map_err(|e| ImageError::Blob {
        digest: layer.digest.clone(),
        why: format!("cannot open {}: {e}", path.display()),
    })?;
    let verifying = Verifying::new(
        BufReader::with_capacity(1 << 16, file),
        layer.digest.clone(),
        layer.size,
    );
    let result = match comp {
        Compression::None => {
            let mut m = Measured::new(verifying, budget);
            f(&mut m).and_then(|s| {
                drain(&mut m)?;
                let (v, diff) = m.into_parts();
                v.finish().map_err(UnpackError::Read)?;
                Ok((s, diff))
            })
        }
        Compression::Gzip => {
            let mut m = Measured::new(flate2::read::MultiGzDecoder::new(verifying), budget);
            f(&mut m).and_then(|s| {
                drain(&mut m)?;
                let (gz, diff) = m.into_parts();
                gz.into_inner().finish().map_err(UnpackError::Read)?;
                Ok((s, diff))
            })
        }
        Compression::Zstd => {
            let z = super::zstd::ZstdFrames::new(verifying_buf(verifying));
            let mut m = Measured::new(z, budget);
            f(&mut m).and_then(|s| {
                drain(&mut m)?;
                let (z, diff) = m.into_parts();
                z.into_inner()
                    .into_inner()
                    .finish()
                    .map_err(UnpackError::Read)?;
                Ok((s, diff))
            })
        }
    };
    result.map_err(|err| {
        if let Some(why) = budget.exceeded() {
            return ImageError::TooLarge {
                layer: layer.digest.clone(),
                why,
            };
        }
        // A corrupt blob shows up as whatever the decompressor or tar trips on first:
        // name the real cause when it is one.
        match verify_blob(layout, layer) {
            Err(bad) => bad,
            Ok(()) => ImageError::Layer {
                digest: layer.digest.clone(),
                err,
            },
        }
    })
}

/// Reads the rest of a layer's uncompressed stream (after the tar's end), so it is hashed.
fn drain(r: &mut impl io::Read) -> Result<(), UnpackError> {
    io::copy(r, &mut io::sink())
        .map(drop)
        .map_err(UnpackError::Read)
}

/// A buffer over the verifying reader (zstd needs to peek for the next frame).
fn verifying_buf<R: io::Read>(v: Verifying<R>) -> BufReader<Verifying<R>> {
    BufReader::with_capacity(1 << 16, v)
}

/// Marks an entry as just used (its mtime), for `prune`'s minimum age.
fn touch(entry: &Path) {
    if let Ok(f) = File::open(entry) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
}
