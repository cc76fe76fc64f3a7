//! Caps on what one image may unpack to, so a hostile or broken image (a gzip bomb, a tar
//! of millions of empty files) cannot fill the cache's filesystem, and the measurement of
//! each layer's uncompressed stream (its sha256 is the layer's `diff_id`).
//!
//! - `BERTH_EXECUTOR_IMAGE_MAX_BYTES` (default 64 GiB): the uncompressed tar streams of all
//!   layers of one image together (sparse files count their full size on top).
//! - `BERTH_EXECUTOR_IMAGE_MAX_ENTRIES` (default 4 000 000): the tar entries of all layers.
//!
//! Sizes are bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024; `GiB`, `G` and
//! `GB` alike).

use std::cell::Cell;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use super::digest::{hex, Digest};
use super::ImageError;

pub const MAX_BYTES_VAR: &str = "BERTH_EXECUTOR_IMAGE_MAX_BYTES";
pub const MAX_ENTRIES_VAR: &str = "BERTH_EXECUTOR_IMAGE_MAX_ENTRIES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
        }
    }
}

impl Limits {
    /// From the environment (unset: the defaults).
    pub fn from_env() -> Result<Limits, ImageError> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Limits, ImageError> {
        let mut l = Limits::default();
        let bad =
            |var: &str, v: &str, why: &str| ImageError::Setting(format!("{var}: {v:?} {why}"));
        if let Some(v) = get(MAX_BYTES_VAR) {
            l.max_bytes = parse_size(&v).ok_or_else(|| {
                bad(
                    MAX_BYTES_VAR,
                    &v,
                    "is not a size (bytes, or a number with K, M, G or T)",
                )
            })?;
        }
        if let Some(v) = get(MAX_ENTRIES_VAR) {
            l.max_entries = v
                .trim()
                .parse()
                .map_err(|_| bad(MAX_ENTRIES_VAR, &v, "is not a number"))?;
        }
        Ok(l)
    }
}

/// `123`, `512K`, `64G`, `64GiB`, `1TB` (powers of 1024).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// What one unpack (or scan) of an image has used so far, against its [`Limits`].
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    bytes: Cell<u64>,
    entries: Cell<u64>,
    over: Cell<Option<&'static str>>,
}

impl Budget {
    pub fn new(limits: Limits) -> Budget {
        Budget {
            limits,
            bytes: Cell::new(0),
            entries: Cell::new(0),
            over: Cell::new(None),
        }
    }

    /// Counts `n` more uncompressed bytes; an error once over the cap.
    pub fn bytes(&self, n: u64) -> io::Result<()> {
        let total = self.bytes.get().saturating_add(n);
        self.bytes.set(total);
        if total > self.limits.max_bytes {
            self.over.set(Some(MAX_BYTES_VAR));
            return Err(io::Error::other(self.exceeded().unwrap_or_default()));
        }
        Ok(())
    }

    /// Counts one more tar entry; an error once over the cap.
    pub fn entry(&self) -> Result<(), String> {
        let total = self.entries.get() + 1;
        self.entries.set(total);
        if total > self.limits.max_entries {
            self.over.set(Some(MAX_ENTRIES_VAR));
            return Err(self.exceeded().unwrap_or_default());
        }
        Ok(())
    }

    /// Why the unpack was stopped, if a cap was reached.
    pub fn exceeded(&self) -> Option<String> {
        Some(match self.over.get()? {
            MAX_ENTRIES_VAR => format!(
                "the image has more than {} tar entries (the limit, {MAX_ENTRIES_VAR})",
                self.limits.max_entries
            ),
            _ => format!(
                "the image unpacks to more than {} bytes (the limit, {MAX_BYTES_VAR}, counts all layers' uncompressed tar streams)",
                self.limits.max_bytes
            ),
        })
    }

    pub fn used_bytes(&self) -> u64 {
        self.bytes.get()
    }
}

/// A layer's uncompressed tar stream: counted against the budget and hashed (its sha256 is
/// the layer's `diff_id`).
pub struct Measured<'b, R> {
    inner: R,
    hasher: Sha256,
    budget: &'b Budget,
}

impl<'b, R: Read> Measured<'b, R> {
    pub fn new(inner: R, budget: &'b Budget) -> Self {
        Measured {
            inner,
            hasher: Sha256::new(),
            budget,
        }
    }

    /// The inner reader and the digest of everything read.
    pub fn into_parts(self) -> (R, Digest) {
        let d = Digest::parse(&format!("sha256:{}", hex(&self.hasher.finalize())))
            .expect("a sha256 digest");
        (self.inner, d)
    }
}

impl<R: Read> Read for Measured<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.bytes(n as u64)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Counts what is read through it against the budget (a sparse file's holes).
pub struct Charged<'b, R> {
    pub inner: R,
    pub budget: &'b Budget,
}

impl<R: Read> Read for Charged<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.bytes(n as u64)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_settings() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("64G"), Some(64 << 30));
        assert_eq!(parse_size("64GiB"), Some(64 << 30));
        assert_eq!(parse_size("2 tb"), Some(2 << 40));
        assert_eq!(parse_size("512K"), Some(512 << 10));
        for bad in ["", "G", "-1", "1.5G", "12X", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(Limits::from_vars(|_| None).unwrap(), Limits::default());
        let l = Limits::from_vars(|k| Some(if k == MAX_BYTES_VAR { "1M" } else { "10" }.into()))
            .unwrap();
        assert_eq!(
            l,
            Limits {
                max_bytes: 1 << 20,
                max_entries: 10
            }
        );
        let e = Limits::from_vars(|k| (k == MAX_BYTES_VAR).then(|| "lots".into()))
            .unwrap_err()
            .to_string();
        assert!(e.contains(MAX_BYTES_VAR) && e.contains("lots"), "{e}");
    }

    #[test]
    fn measured_streams_hash_and_stop_at_the_cap() {
        let b = Budget::new(Limits {
            max_bytes: 10,
            max_entries: 1,
        });
        let mut m = Measured::new(&b"hello"[..], &b);
        io::copy(&mut m, &mut io::sink()).unwrap();
        assert_eq!(m.into_parts().1, Digest::of(b"hello"));
        let mut m = Measured::new(&b"world!"[..], &b);
        let e = io::copy(&mut m, &mut io::sink()).unwrap_err().to_string();
        assert!(
            e.contains("more than 10 bytes") && e.contains(MAX_BYTES_VAR),
            "{e}"
        );
        assert!(b.exceeded().is_some());
        let b = Budget::new(Limits {
            max_bytes: 10,
            max_entries: 1,
        });
        b.entry().unwrap();
        assert!(b.entry().unwrap_err().contains(MAX_ENTRIES_VAR));
    }
}
