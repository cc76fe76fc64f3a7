//! Content addresses: `sha256:<hex>` digests, and readers that check a blob's size and
//! digest while it is read, so nothing unverified is trusted once the read has ended.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// A `sha256:<64 lowercase hex>` digest (the only algorithm accepted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{text:?} is not a sha256 digest (sha256:<64 lowercase hex digits>)")]
pub struct BadDigest {
    pub text: String,
}

impl Digest {
    pub fn parse(text: &str) -> Result<Digest, BadDigest> {
        let ok = text.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Digest(text.to_string()))
        } else {
            Err(BadDigest {
                text: text.chars().take(100).collect(),
            })
        }
    }

    /// The digest of some bytes.
    pub fn of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex(&Sha256::digest(data))))
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `blobs/sha256/<hex>` inside a layout.
    pub fn blob_path(&self, layout: &Path) -> PathBuf {
        layout.join("blobs").join("sha256").join(self.hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a blob and fails (with `InvalidData`) if it holds more than `size` bytes, or, at
/// its end, fewer, or if its sha256 is not `digest`.
pub struct Verifying<R> {
    inner: R,
    digest: Digest,
    size: u64,
    read: u64,
    hasher: Sha256,
    checked: bool,
}

impl<R: Read> Verifying<R> {
    pub fn new(inner: R, digest: Digest, size: u64) -> Self {
        Verifying {
            inner,
            digest,
            size,
            read: 0,
            hasher: Sha256::new(),
            checked: false,
        }
    }

    /// Reads what is left, so the whole blob has been verified.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Never hand out more than the descriptor's size: read one byte past it to notice.
        let room = (self.size - self.read.min(self.size)).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.size {
            return Err(invalid(format!(
                "blob {} is larger than its descriptor's size {}",
                self.digest, self.size
            )));
        }
        self.hasher.update(&buf[..n]);
        if n == 0 && !self.checked {
            self.checked = true;
            if self.read != self.size {
                return Err(invalid(format!(
                    "blob {} has {} bytes, its descriptor says {}",
                    self.digest, self.read, self.size
                )));
            }
            let got = format!("sha256:{}", hex(&self.hasher.clone().finalize()));
            if got != self.digest.as_str() {
                return Err(invalid(format!(
                    "blob {} does not match its digest (its content hashes to {got})",
                    self.digest
                )));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&good).is_ok());
        for bad in [
            "sha256:abc".to_string(),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}/", "a".repeat(63)),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verifying_reader_checks_size_and_digest() {
        let data = b"hello blob";
        let d = Digest::of(data);
        let mut out = Vec::new();
        Verifying::new(&data[..], d.clone(), data.len() as u64)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let e = Verifying::new(&b"hellO blob"[..], d.clone(), 10)
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("does not match"), "{e}");
        let e = Verifying::new(&data[..], d.clone(), 5)
            .finish()
            .unwrap_err();
        assert!(e.to_string().contains("larger"), "{e}");
        let e = Verifying::new(&data[..], d, 11).finish().unwrap_err();
        assert!(e.to_string().contains("has 10 bytes"), "{e}");
    }
}
