//! `health_port`: `GET /health` answers 200 when every service with a health check is
//! healthy, 503 otherwise, each with the status JSON as body. Served by one thread from a
//! snapshot the run loop refreshes, so Marathon's checks never wait on supervision.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the endpoint shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every checked service is healthy.
    pub healthy: bool,
    /// The status JSON.
    pub body: String,
}

/// Binds 0.0.0.0:port and serves on a thread.
pub fn start(port: u16, snapshot: Arc<Mutex<Snapshot>>) -> std::io::Result<()> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    std::thread::Builder::new().name("berth-health".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            // Read the request head (up to its blank line, 2 KiB or the timeout).
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while n < buf.len() && !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                match (&stream).read(&mut buf[n..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let snap = snapshot.lock().map(|s| s.clone()).unwrap_or_default();
            let (code, body) = if head.starts_with("GET /health ") || head.starts_with("GET /health?") {
                if snap.healthy {
                    ("200 OK", snap.body)
                } else {
                    ("503 Service Unavailable", snap.body)
                }
            } else {
                ("404 Not Found", r#"{"ok":false,"error":"only GET /health is served"}"#.to_string())
            };
            let _ = write!(
                &stream,
                "HTTP/1.0 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    })?;
    Ok(())
}
