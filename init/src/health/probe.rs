//! Network probes (blocking, bounded by a timeout; the supervisor runs them on a thread).
//! Command probes are processes and go through the supervisor's spawn and reaper instead.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connects to 127.0.0.1:port within `timeout`.
pub fn tcp(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, timeout).is_ok()
}

/// `GET path` on 127.0.0.1:port; success is a status of 200-399 within `timeout`.
pub fn http(port: u16, path: &str, timeout: Duration) -> bool {
    http_status(port, path, timeout).is_some_and(|s| (200..400).contains(&s))
}

/// The status code of `GET path`, or None on any error.
pub fn http_status(port: u16, path: &str, timeout: Duration) -> Option<u16> {
    let deadline = Instant::now() + timeout;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    let left = deadline
        .checked_duration_since(Instant::now())?
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left)).ok()?;
    s.set_write_timeout(Some(left)).ok()?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: berth-init\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        let n = s.read(&mut buf[got..]).ok()?;
        if n == 0 {
            break;
        }
        got += n;
    }
    parse_status_line(&buf[..got])
}

fn parse_status_line(head: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(head).ok()?;
    let mut parts = text.split(' ');
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.get(..3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn status_line() {
        assert_eq!(parse_status_line(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line(b"SSH-2.0"), None);
    }

    #[test]
    fn probes_a_local_server() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            for code in [200, 503] {
                let (mut c, _) = l.accept().unwrap();
                let mut b = [0u8; 256];
                let _ = c.read(&mut b).unwrap();
                assert!(b.starts_with(b"GET /health HTTP/1.0"));
                write!(c, "HTTP/1.0 {code} X\r\n\r\n").unwrap();
            }
        });
        assert!(http(port, "/health", Duration::from_secs(5)));
        assert!(!http(port, "/health", Duration::from_secs(5)));
        t.join().unwrap();
        assert!(!tcp(port, Duration::from_secs(1)), "listener closed");
    }
}
