//! A small HTTP/1.1 client: one POST per connection, and a response body read as a
//! stream (chunked, Content-Length or until close). The executor API needs no more than
//! this, and a hand-written client keeps the executor's dependencies small.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::env::Secret;
use super::link::Link;

const MAX_HEADER: usize = 64 << 10;
/// The largest chunk accepted: a whole record at most, plus its length line.
pub const MAX_CHUNK: usize = super::recordio::MAX_RECORD + 32;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        err: std::io::Error,
    },
    #[error("I/O error talking to the agent")]
    Io(#[from] std::io::Error),
    #[error("malformed HTTP response: {what}")]
    Malformed { what: String },
    #[error("no answer from {endpoint} within {after:?}")]
    Timeout {
        endpoint: String,
        after: std::time::Duration,
    },
    #[error("cannot set TCP keepalive on the connection to the agent")]
    Keepalive(#[source] nix::Error),
}

fn malformed(what: impl Into<String>) -> HttpError {
    HttpError::Malformed { what: what.into() }
}

#[derive(Debug)]
enum Framing {
    Chunked { done: bool },
    Length { left: usize },
    UntilClose { done: bool },
}

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    framing: Framing,
    /// For reading a whole (non-stream) body.
    timeout: std::time::Duration,
}

/// One request: `POST path` with a JSON body.
pub struct Request<'a> {
    pub endpoint: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
    pub token: Option<&'a Secret>,
    /// Keepalive and the response timeout (see [`Link`]).
    pub link: Link,
}

impl Request<'_> {
    /// The bytes sent on the wire (the token only in the Authorization header).
    fn head(&self) -> String {
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.path,
            self.endpoint,
            self.body.len()
        );
        if let Some(t) = self.token {
            head.push_str(&format!("Authorization: Bearer {}\r\n", t.expose()));
        }
        head.push_str("\r\n");
        head
    }

    /// Sends the request and reads the status line and headers, all within the link's
    /// response timeout; the connection has TCP keepalive on.
    pub async fn send(&self) -> Result<Response, HttpError> {
        let after = self.link.response_timeout;
        tokio::time::timeout(after, self.exchange())
            .await
            .map_err(|_| HttpError::Timeout {
                endpoint: self.endpoint.to_string(),
                after,
            })?
    }

    async fn exchange(&self) -> Result<Response, HttpError> {
        let mut stream =
            TcpStream::connect(self.endpoint)
                .await
                .map_err(|err| HttpError::Connect {
                    endpoint: self.endpoint.to_string(),
                    err,
                })?;
        stream.set_nodelay(true)?;
        self.link.apply(&stream).map_err(HttpError::Keepalive)?;
        let mut msg = self.head().into_bytes();
        msg.extend_from_slice(self.body);
        stream.write_all(&msg).await?;
        stream.flush().await?;
        let mut resp = read_head(BufReader::new(stream)).await?;
        resp.timeout = self.link.response_timeout;
        Ok(resp)
    }
}

async fn read_line(r: &mut BufReader<TcpStream>, budget: &mut usize) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let n = r.read_until(b'\n', &mut line).await?;
    if n == 0 {
        return Err(malformed("connection closed in the header"));
    }
    *budget = budget
        .checked_sub(n)
        .ok_or_else(|| malformed("header too long"))?;
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| malformed("header is not UTF-8"))
}

async fn read_head(mut reader: BufReader<TcpStream>) -> Result<Response, HttpError> {
    let mut budget = MAX_HEADER;
    let status_line = read_line(&mut reader, &mut budget).await?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(malformed(format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader, &mut budget).await?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| malformed(format!("header line {line:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let framing =
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked { done: false }
        } else if let Some(len) = get("content-length") {
            Framing::Length {
                left: len.parse().map_err(|_| malformed("bad content-length"))?,
            }
        } else {
            Framing::UntilClose { done: false }
        };
    Ok(Response {
        status,
        headers,
        reader,
        framing,
        timeout: std::time::Duration::from_secs(30),
    })
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The next piece of the body, `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        match &mut self.framing {
            Framing::Chunked { done } => {
                if *done {
                    return Ok(None);
                }
                let mut budget = MAX_HEADER;
                let line = read_line(&mut self.reader, &mut budget).await?;
                let size_text = line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| malformed(format!("chunk size {line:?}")))?;
                // A size from the network: refuse what no record needs before allocating
                // (the session resubscribes on the error).
                if size > MAX_CHUNK {
                    return Err(malformed(format!(
                        "chunk of {size} bytes is larger than {MAX_CHUNK}"
                    )));
                }
                if size == 0 {
                    // Trailers, then the empty line.
                    while !read_line(&mut self.reader, &mut budget).await?.is_empty() {}
                    *done = true;
                    return Ok(None);
                }
                let mut data = vec![0; size];
                self.reader.read_exact(&mut data).await?;
                let end = read_line(&mut self.reader, &mut budget).await?;
                if !end.is_empty() {
                    return Err(malformed("chunk not followed by CRLF"));
                }
                Ok(Some(data))
            }
            Framing::Length { left } => {
                if *left == 0 {
                    return Ok(None);
                }
                let mut data = vec![0; (*left).min(64 << 10)];
                let n = self.reader.read(&mut data).await?;
                if n == 0 {
                    return Err(malformed("body shorter than content-length"));
                }
                data.truncate(n);
                *left -= n;
                Ok(Some(data))
            }
            Framing::UntilClose { done } => {
                if *done {
                    return Ok(None);
                }
                let mut data = vec![0; 64 << 10];
                let n = self.reader.read(&mut data).await?;
                if n == 0 {
                    *done = true;
                    return Ok(None);
                }
                data.truncate(n);
                Ok(Some(data))
            }
        }
    }

    /// The whole body (at most `limit` bytes are kept).
    pub async fn body(mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let after = self.timeout;
        tokio::time::timeout(after, self.read_body(limit))
            .await
            .map_err(|_| HttpError::Timeout {
                endpoint: "the agent".into(),
                after,
            })?
    }

    async fn read_body(&mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            if out.len() < limit {
                out.extend_from_slice(&c[..c.len().min(limit - out.len())]);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn serve_once(reply: &'static [u8]) -> (String, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0; 4096];
            let n = s.read(&mut req).await.unwrap();
            req.truncate(n);
            // Write the reply in awkward pieces.
            for piece in reply.chunks(3) {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
            }
            req
        });
        (addr, h)
    }

    #[tokio::test]
    async fn chunked_stream_is_decoded() {
        let (addr, h) = serve_once(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await;
        let token = Secret::new("tok".into());
        let req = Request {
            endpoint: &addr,
            path: "/api/v1/executor",
            body: b"{}",
            token: Some(&token),
            link: Link::default(),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("Content-Type"), Some("application/json"));
        assert_eq!(resp.body(1 << 20).await.unwrap(), b"hello world");
        let sent = String::from_utf8(h.await.unwrap()).unwrap();
        assert!(sent.starts_with("POST /api/v1/executor HTTP/1.1\r\n"));
        assert!(sent.contains("Authorization: Bearer tok\r\n"));
        assert!(sent.contains("Content-Type: application/json\r\n"));
        assert!(sent.contains("Accept: application/json\r\n"));
        assert!(sent.ends_with("\r\n\r\n{}"));
    }

    #[tokio::test]
    async fn a_huge_chunk_size_is_an_error_not_an_allocation() {
        let (addr, _h) =
            serve_once(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nx")
                .await;
        let req = Request {
            endpoint: &addr,
            path: "/",
            body: b"",
            token: None,
            link: Link::default(),
        };
        let mut resp = req.send().await.unwrap();
        let err = resp.chunk().await.unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[tokio::test]
    async fn content_length_body() {
        let (addr, _h) =
            serve_once(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\nbad uuid").await;
        let req = Request {
            endpoint: &addr,
            path: "/",
            body: b"",
            token: None,
            link: Link::default(),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body(100).await.unwrap(), b"bad uui");
    }

    #[tokio::test]
    async fn garbage_is_an_error() {
        let (addr, _h) = serve_once(b"SSH-2.0-x\r\n\r\n").await;
        let req = Request {
            endpoint: &addr,
            path: "/",
            body: b"",
            token: None,
            link: Link::default(),
        };
        assert!(matches!(req.send().await, Err(HttpError::Malformed { .. })));
    }

    #[tokio::test]
    async fn refused_connection_names_the_endpoint() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let req = Request {
            endpoint: &addr,
            path: "/",
            body: b"",
            token: None,
            link: Link::default(),
        };
        let err = req.send().await.unwrap_err();
        assert!(err.to_string().contains(&addr));
    }

    #[tokio::test]
    async fn an_agent_that_accepts_and_never_answers_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let _hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
            drop(s);
        });
        let link = Link {
            response_timeout: std::time::Duration::from_millis(200),
            ..Link::default()
        };
        let req = Request {
            endpoint: &addr,
            path: "/",
            body: b"{}",
            token: None,
            link,
        };
        let t = std::time::Instant::now();
        let err = req.send().await.unwrap_err();
        assert!(matches!(err, HttpError::Timeout { .. }), "{err}");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
