//! zstd layers (`application/vnd.oci.image.layer.v1.tar+zstd`), decoded with the pure-Rust
//! `ruzstd`. A layer may hold several frames (zstd:chunked writes one per chunk, plus
//! skippable frames with its metadata): they are decoded one after another, skippable
//! frames skipped. The blob itself is verified by its sha256 around this reader.

use std::io::{self, BufRead, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Decodes every frame of a zstd stream.
pub struct ZstdFrames<R> {
    source: R,
    decoder: FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    pub fn new(source: R) -> Self {
        ZstdFrames {
            source,
            decoder: FrameDecoder::new(),
            in_frame: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.source
    }
}

fn bad(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                let n = self.decoder.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.decoder.is_finished() {
                    if let (Some(want), Some(got)) = (
                        self.decoder.get_checksum_from_data(),
                        self.decoder.get_calculated_checksum(),
                    ) {
                        if want != got {
                            return Err(bad("frame checksum mismatch"));
                        }
                    }
                    self.in_frame = false;
                    continue;
                }
                self.decoder
                    .decode_blocks(
                        &mut self.source,
                        BlockDecodingStrategy::UptoBytes(buf.len().max(1 << 16)),
                    )
                    .map_err(bad)?;
                continue;
            }
            if self.source.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.decoder.reset(&mut self.source) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(
                        &mut (&mut self.source).take(u64::from(length)),
                        &mut io::sink(),
                    )?;
                    if skipped != u64::from(length) {
                        return Err(bad("truncated skippable frame"));
                    }
                }
                Err(e) => return Err(bad(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruzstd::encoding::{compress_to_vec, CompressionLevel};

    #[test]
    fn frames_and_skippable_frames_decode_in_order() {
        let a: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let b = b"second frame".to_vec();
        let mut stream = compress_to_vec(&a[..], CompressionLevel::Fastest);
        // A skippable frame (magic 0x184D2A50..5F) between the two.
        stream.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
        stream.extend_from_slice(&5u32.to_le_bytes());
        stream.extend_from_slice(b"skip!");
        stream.extend(compress_to_vec(&b[..], CompressionLevel::Uncompressed));
        let mut out = Vec::new();
        ZstdFrames::new(&stream[..]).read_to_end(&mut out).unwrap();
        let mut want = a.clone();
        want.extend_from_slice(&b);
        assert_eq!(out.len(), want.len());
        assert!(out == want);
        let mut broken = stream.clone();
        broken[0] ^= 0xff;
        assert!(ZstdFrames::new(&broken[..])
            .read_to_end(&mut Vec::new())
            .is_err());
    }
}
