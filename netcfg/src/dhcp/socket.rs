//! The client's UDP socket: port 68, bound to the interface (SO_BINDTODEVICE) with
//! SO_BROADCAST. A plain UDP socket is enough: while the interface has no address the
//! client sets the broadcast flag, so the server's replies go to 255.255.255.255, which
//! this socket receives; once bound, renewals are unicast both ways.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use tokio::time::Instant;

use super::DhcpError;
use crate::names::IfName;

/// DHCP server and client ports.
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// A bound DHCP client socket.
#[derive(Debug)]
pub struct DhcpSocket {
    sock: tokio::net::UdpSocket,
    iface: String,
}

impl DhcpSocket {
    /// Bind 0.0.0.0:68 on `iface` (must be called inside the netns of `iface`).
    pub fn bind(iface: &IfName) -> Result<Self, DhcpError> {
        let err = |e: nix::Error| DhcpError::Socket {
            iface: iface.to_string(),
            err: e.into(),
        };
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(err)?;
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err)?;
        setsockopt(&fd, sockopt::Broadcast, &true).map_err(err)?;
        setsockopt(&fd, sockopt::BindToDevice, &OsString::from(iface.as_str())).map_err(err)?;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::new(0, 0, 0, 0, CLIENT_PORT),
        )
        .map_err(err)?;
        let std_sock = std::net::UdpSocket::from(fd);
        let sock = tokio::net::UdpSocket::from_std(std_sock).map_err(|e| DhcpError::Socket {
            iface: iface.to_string(),
            err: e,
        })?;
        Ok(Self {
            sock,
            iface: iface.to_string(),
        })
    }

    /// Send to `dst`:67 (255.255.255.255 for broadcast).
    pub async fn send(&self, bytes: &[u8], dst: Ipv4Addr) -> Result<(), DhcpError> {
        self.sock
            .send_to(bytes, SocketAddrV4::new(dst, SERVER_PORT))
            .await
            .map(|_| ())
            .map_err(|err| DhcpError::Socket {
                iface: self.iface.clone(),
                err,
            })
    }
}

impl super::io::Transport for DhcpSocket {
    async fn send(&self, bytes: &[u8], dst: Ipv4Addr) -> Result<(), DhcpError> {
        DhcpSocket::send(self, bytes, dst).await
    }

    async fn recv(&self, deadline: Instant) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        loop {
            match tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    buf.truncate(n);
                    return Some(buf);
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "dhcp recv");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => return None,
            }
        }
    }
}
