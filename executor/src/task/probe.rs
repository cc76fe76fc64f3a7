//! Running one health probe: COMMAND inside the container (`runc exec`, see
//! `probe/command.rs`: a timed-out check is killed with its whole process tree), HTTP and TCP
//! against 127.0.0.1 in the container's network namespace (the socket is made by a
//! thread that joined that namespace; the connection then works from anywhere).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

mod command;

use super::health::Probe;
use super::runc::Runtime;

/// Connects to 127.0.0.1:port inside the network namespace of `pid`.
fn connect_in_netns(pid: i64, port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    std::thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), timeout)
    })
    .join()
    .map_err(|_| std::io::Error::other("netns thread panicked"))?
}

fn http_get(mut s: TcpStream, port: u16, path: &str, timeout: Duration) -> Result<(), String> {
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: berth-executor\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut head[n..]).map_err(|e| e.to_string())?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let text = String::from_utf8_lossy(&head[..n]);
    let code: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not HTTP: {text:?}"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP {code}"))
    }
}

/// Runs a probe; `Ok` = healthy.
pub async fn run(
    probe: &Probe,
    rt: &Runtime,
    container: &str,
    bundle: &std::path::Path,
    timeout: Duration,
) -> Result<(), String> {
    match probe {
        Probe::Command(cmd) => command::run(rt, container, bundle, cmd, timeout).await,
        Probe::Tcp { port } | Probe::Http { port, .. } => {
            let pid = tokio::task::spawn_blocking({
                let rt = rt.clone();
                let id = container.to_string();
                move || rt.state(&id)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?
            .filter(|s| s.pid > 0)
            .ok_or("container not running")?
            .pid;
            let (port, path) = (
                *port,
                match probe {
                    Probe::Http { path, .. } => Some(path.clone()),
                    _ => None,
                },
            );
            let work = tokio::task::spawn_blocking(move || {
                let s = connect_in_netns(pid, port, timeout).map_err(|e| e.to_string())?;
                match path {
                    Some(p) => http_get(s, port, &p, timeout),
                    None => Ok(()),
                }
            });
            tokio::time::timeout(timeout + Duration::from_millis(100), work)
                .await
                .map_err(|_| format!("timed out after {timeout:?}"))?
                .map_err(|e| e.to_string())?
        }
    }
}
