//! A `text/event-stream` parser (the WHATWG framing Marathon's `/v2/events` uses):
//! `event:` and `data:` lines (several `data:` lines join with `\n`), `id:`, comment lines
//! starting with `:` (keep-alives), a blank line ends an event. Lines end with `\n`,
//! `\r\n` or `\r`; chunk boundaries are unrelated to line boundaries.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// `message` when the stream named none.
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("an event-stream event exceeds {limit} bytes")]
pub struct TooLarge {
    pub limit: usize,
}

/// Incremental parser: feed it chunks, take events.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    pending: usize,
    limit: usize,
    /// The previous chunk ended in `\r`: a `\n` starting this one belongs to it.
    after_cr: bool,
}

impl Parser {
    /// A parser refusing events (and lines) larger than `limit` bytes.
    pub fn new(limit: usize) -> Parser {
        Parser {
            buf: Vec::new(),
            event: None,
            data: None,
            id: None,
            pending: 0,
            limit,
            after_cr: false,
        }
    }

    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<Vec<Event>, TooLarge> {
        let mut out = Vec::new();
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if b == b'\n' || b == b'\r' {
                let line = std::mem::take(&mut self.buf);
                self.line(&line, &mut out);
                if b == b'\r' {
                    if i + 1 == chunk.len() {
                        self.after_cr = true;
                    } else if chunk[i + 1] == b'\n' {
                        i += 1;
                    }
                }
            } else {
                self.buf.push(b);
                if self.buf.len() + self.pending > self.limit {
                    return Err(TooLarge { limit: self.limit });
                }
            }
            i += 1;
        }
        Ok(out)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        let line = String::from_utf8_lossy(line);
        if line.is_empty() {
            if let Some(data) = self.data.take() {
                out.push(Event {
                    event: self.event.take().unwrap_or_else(|| "message".into()),
                    data,
                    id: self.id.clone(),
                });
            }
            self.event = None;
            self.pending = 0;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        self.pending += value.len();
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_with_keepalives_and_crlf() {
        let stream = b":keep-alive\r\nevent: status_update_event\r\ndata: {\"a\":1}\r\n\r\n\
                       : ping\n\nevent:x\ndata:l1\ndata:l2\n\ndata: plain\r\r";
        for cut in 0..stream.len() {
            let mut p = Parser::new(1 << 20);
            let mut ev = p.feed(&stream[..cut]).unwrap();
            ev.extend(p.feed(&stream[cut..]).unwrap());
            let names: Vec<_> = ev
                .iter()
                .map(|e| (e.event.as_str(), e.data.as_str()))
                .collect();
            assert_eq!(
                names,
                [
                    ("status_update_event", "{\"a\":1}"),
                    ("x", "l1\nl2"),
                    ("message", "plain")
                ],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = Parser::new(100);
        assert!(p.feed(&[b'a'; 50]).is_ok());
        assert!(p.feed(&[b'a'; 60]).is_err());
    }
}
