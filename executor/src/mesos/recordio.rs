//! RecordIO: `<decimal length>\n<record>` repeated. The agent's stream arrives in chunks
//! that have nothing to do with record boundaries, so the decoder keeps whatever is
//! incomplete and finishes it with the next chunk.

/// Records larger than this are refused (a corrupt length would otherwise make the
/// executor buffer without end).
pub const MAX_RECORD: usize = 64 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordIoError {
    #[error("invalid RecordIO length header {header:?}")]
    Header { header: String },
    #[error("RecordIO record of {len} bytes is larger than {MAX_RECORD}")]
    TooLarge { len: usize },
}

/// Incremental decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Length of the record being read, once its header is complete.
    want: Option<usize>,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a chunk and returns every record it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, RecordIoError> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            match self.want {
                None => {
                    let Some(nl) = self.buf[pos..].iter().position(|&b| b == b'\n') else {
                        // A header longer than 20 digits can't be valid.
                        if self.buf.len() - pos > 20 {
                            return Err(self.header_error(pos, self.buf.len()));
                        }
                        break;
                    };
                    let header = &self.buf[pos..pos + nl];
                    let len = std::str::from_utf8(header)
                        .ok()
                        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|h| h.parse::<usize>().ok())
                        .ok_or_else(|| self.header_error(pos, pos + nl))?;
                    if len > MAX_RECORD {
                        return Err(RecordIoError::TooLarge { len });
                    }
                    self.want = Some(len);
                    pos += nl + 1;
                }
                Some(len) => {
                    if self.buf.len() - pos < len {
                        break;
                    }
                    out.push(self.buf[pos..pos + len].to_vec());
                    pos += len;
                    self.want = None;
                }
            }
        }
        self.buf.drain(..pos);
        Ok(out)
    }

    /// True when no partial record is pending (a clean end of stream).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.want.is_none()
    }

    fn header_error(&self, from: usize, to: usize) -> RecordIoError {
        let end = to.min(from + 32);
        RecordIoError::Header {
            header: String::from_utf8_lossy(&self.buf[from..end]).into_owned(),
        }
    }
}

/// Encodes one record (used by tests and the agent double).
pub fn encode(record: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\n", record.len()).into_bytes();
    out.extend_from_slice(record);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> (Vec<u8>, Vec<Vec<u8>>) {
        let records: Vec<Vec<u8>> = vec![
            br#"{"type":"HEARTBEAT"}"#.to_vec(),
            Vec::new(),
            br#"{"type":"SUBSCRIBED","subscribed":{"x":"line1\nline2"}}"#.to_vec(),
            vec![b'7'; 123],
        ];
        let bytes = records.iter().flat_map(|r| encode(r)).collect();
        (bytes, records)
    }

    #[test]
    fn the_reference_example() {
        let mut d = Decoder::new();
        let out = d.feed(b"20\n{\"type\":\"HEARTBEAT\"}").unwrap();
        assert_eq!(out, vec![br#"{"type":"HEARTBEAT"}"#.to_vec()]);
        assert!(d.is_idle());
    }

    #[test]
    fn any_split_point_gives_the_same_records() {
        let (bytes, records) = stream();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let mut d = Decoder::new();
                let mut got = d.feed(&bytes[..i]).unwrap();
                got.extend(d.feed(&bytes[i..j]).unwrap());
                got.extend(d.feed(&bytes[j..]).unwrap());
                assert_eq!(got, records, "split at {i} and {j}");
                assert!(d.is_idle());
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let (bytes, records) = stream();
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &bytes {
            got.extend(d.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got, records);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert!(matches!(
            Decoder::new().feed(b"x\n{}"),
            Err(RecordIoError::Header { .. })
        ));
        assert!(matches!(
            Decoder::new().feed(b"-1\n"),
            Err(RecordIoError::Header { .. })
        ));
        assert!(matches!(
            Decoder::new().feed(b"\n"),
            Err(RecordIoError::Header { .. })
        ));
        assert!(matches!(
            Decoder::new().feed(b"123456789012345678901234"),
            Err(RecordIoError::Header { .. })
        ));
        assert!(matches!(
            Decoder::new().feed(b"999999999999\n"),
            Err(RecordIoError::TooLarge { .. })
        ));
    }

    #[test]
    fn partial_record_is_not_idle() {
        let mut d = Decoder::new();
        assert!(d.feed(b"5\nab").unwrap().is_empty());
        assert!(!d.is_idle());
    }
}
