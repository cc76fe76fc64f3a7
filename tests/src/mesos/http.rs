//! The double's HTTP/1.1 server side: read one request, write a response or a chunked
//! stream. One request per connection is all executors need (they send
//! `Connection: close`), but keep-alive clients are also served one request at a time.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::validate::HttpRequest;

const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 16 << 20;

/// Reads one request; `None` when the peer closed before sending one.
pub async fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut headers = Vec::new();
    let mut size = line.len();
    loop {
        let mut h = String::new();
        let n = r.read_line(&mut h).await?;
        size += n;
        if n == 0 || size > MAX_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "bad request head",
            ));
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut req = HttpRequest {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut l = String::new();
            r.read_line(&mut l).await?;
            let n = usize::from_str_radix(l.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk"))?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end).await?;
                break;
            }
            if req.body.len() + n > MAX_BODY {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "body too large",
                ));
            }
            let mut c = vec![0; n];
            r.read_exact(&mut c).await?;
            req.body.extend_from_slice(&c);
            let mut crlf = String::new();
            r.read_line(&mut crlf).await?;
        }
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "bad content-length")
        })?;
        if len > MAX_BODY {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "body too large",
            ));
        }
        req.body = vec![0; len];
        r.read_exact(&mut req.body).await?;
    }
    Ok(Some(req))
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        415 => "Unsupported Media Type",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// A complete response with a text body.
pub async fn respond(w: &mut TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    w.write_all(msg.as_bytes()).await?;
    w.flush().await
}

/// Starts a chunked 200 stream.
pub async fn start_stream(w: &mut TcpStream) -> std::io::Result<()> {
    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await?;
    w.flush().await
}

/// Writes RecordIO records: all of them in one chunk, or split over `pieces` chunks (to
/// exercise the executor's decoder with chunk boundaries unrelated to record
/// boundaries). `split_size_line`: each chunk-size line goes out in two TCP writes with a
/// pause between them (the client's chunked decoder sees a partial size line).
pub async fn write_records(
    w: &mut TcpStream,
    records: &[&[u8]],
    pieces: usize,
    split_size_line: bool,
) -> std::io::Result<()> {
    let mut data = Vec::new();
    for record in records {
        data.extend_from_slice(format!("{}\n", record.len()).as_bytes());
        data.extend_from_slice(record);
    }
    let size = data.len().div_ceil(pieces.max(1)).max(1);
    for piece in data.chunks(size) {
        let line = format!("{:x}\r\n", piece.len()).into_bytes();
        if split_size_line {
            let (a, b) = line.split_at(1);
            w.write_all(a).await?;
            w.flush().await?;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            w.write_all(b).await?;
        } else {
            w.write_all(&line).await?;
        }
        w.write_all(piece).await?;
        w.write_all(b"\r\n").await?;
        w.flush().await?;
    }
    Ok(())
}
