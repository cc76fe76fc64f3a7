//! The I/O: one generic netlink socket, the "IPVS" family id resolved once, requests that
//! wait for their ack, and dumps read until NLMSG_DONE. Blocking calls (each is a few
//! microseconds of kernel work); async callers use `spawn_blocking`.

use netlink_sys::{protocols::NETLINK_GENERIC, Socket, SocketAddr};

use super::types::{Dest, DestKey, DestState, IpvsError, Service, ServiceKey};
use super::wire::{self, Cmd, Reply};

/// A handle on the IPVS table of the calling thread's netns.
pub struct Ipvs {
    sock: Socket,
    family: u16,
    seq: u32,
}

/// What an idempotent change found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel made the change.
    Done,
    /// Nothing to do: already there (NEW) or already gone (DEL).
    Already,
}

impl Ipvs {
    /// Open a socket in the current netns and resolve the "IPVS" family.
    pub fn open() -> Result<Ipvs, IpvsError> {
        let mut sock = Socket::new(NETLINK_GENERIC).map_err(IpvsError::Socket)?;
        sock.bind_auto().map_err(IpvsError::Socket)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(IpvsError::Socket)?;
        let mut h = Ipvs {
            sock,
            family: 0,
            seq: 0,
        };
        let seq = h.next_seq();
        let replies = h.exchange(
            &wire::get_family("IPVS", seq),
            seq,
            "resolve the IPVS family",
            false,
        );
        let msgs = match replies {
            Err(IpvsError::Kernel { err, .. }) if err.raw_os_error() == Some(libc::ENOENT) => {
                return Err(IpvsError::NoFamily)
            }
            r => r?,
        };
        let attrs = msgs
            .first()
            .ok_or_else(|| IpvsError::Decode("no family answer".into()))?;
        h.family = wire::family_id(attrs)?;
        Ok(h)
    }

    /// The resolved generic netlink family id.
    pub fn family(&self) -> u16 {
        self.family
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Send `msg` and collect the attribute blocks of the answer: up to the ack (a
    /// request) or NLMSG_DONE (`dump`).
    fn exchange(
        &mut self,
        msg: &[u8],
        seq: u32,
        op: &'static str,
        dump: bool,
    ) -> Result<Vec<Vec<u8>>, IpvsError> {
        let kernel = |err| IpvsError::Kernel { op, err };
        self.sock.send(msg, 0).map_err(kernel)?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(kernel)?;
            for r in wire::parse(&buf)? {
                match r {
                    Reply::Data { seq: s, attrs, .. } if s == seq => out.push(attrs.to_vec()),
                    Reply::Error { seq: s, errno } if s == seq => {
                        return Err(kernel(std::io::Error::from_raw_os_error(errno)))
                    }
                    Reply::Ack { seq: s } if s == seq && !dump => return Ok(out),
                    Reply::Done { seq: s } if s == seq && dump => return Ok(out),
                    // A non-dump GETFAMILY answers data then an ack; anything of an older
                    // sequence number (a reply we gave up on) is skipped.
                    _ => {}
                }
            }
        }
    }

    fn change(
        &mut self,
        op: &'static str,
        build: impl FnOnce(u16, u32) -> Vec<u8>,
        already: &[i32],
    ) -> Result<Outcome, IpvsError> {
        let seq = self.next_seq();
        let msg = build(self.family, seq);
        match self.exchange(&msg, seq, op, false) {
            Ok(_) => Ok(Outcome::Done),
            Err(IpvsError::Kernel { err, .. })
                if err.raw_os_error().is_some_and(|e| already.contains(&e)) =>
            {
                Ok(Outcome::Already)
            }
            Err(e) => Err(e),
        }
    }

    /// NEW_SERVICE; an existing service of that key is `Already` (its settings untouched).
    pub fn add_service(&mut self, s: &Service) -> Result<Outcome, IpvsError> {
        self.change(
            "add service",
            |f, q| wire::service(f, q, Cmd::NewService, s),
            &[libc::EEXIST],
        )
    }

    /// SET_SERVICE: change the scheduler/flags/timeout/netmask of an existing service.
    pub fn set_service(&mut self, s: &Service) -> Result<Outcome, IpvsError> {
        self.change(
            "set service",
            |f, q| wire::service(f, q, Cmd::SetService, s),
            &[],
        )
    }

    /// DEL_SERVICE (and its real servers); a missing service is `Already`.
    pub fn del_service(&mut self, k: &ServiceKey) -> Result<Outcome, IpvsError> {
        self.change(
            "delete service",
            |f, q| wire::del_service(f, q, k),
            &[libc::ESRCH, libc::ENOENT],
        )
    }

    /// NEW_DEST; a real server already in the service is `Already`.
    pub fn add_dest(&mut self, k: &ServiceKey, d: &Dest) -> Result<Outcome, IpvsError> {
        self.change(
            "add real server",
            |f, q| wire::dest(f, q, Cmd::NewDest, k, d),
            &[libc::EEXIST],
        )
    }

    /// SET_DEST: weight, forwarding method, thresholds of an existing real server.
    pub fn set_dest(&mut self, k: &ServiceKey, d: &Dest) -> Result<Outcome, IpvsError> {
        self.change(
            "set real server",
            |f, q| wire::dest(f, q, Cmd::SetDest, k, d),
            &[],
        )
    }

    /// DEL_DEST; a real server (or service) already gone is `Already`.
    pub fn del_dest(&mut self, k: &ServiceKey, d: &DestKey) -> Result<Outcome, IpvsError> {
        self.change(
            "delete real server",
            |f, q| wire::del_dest(f, q, k, d),
            &[libc::ENOENT, libc::ESRCH],
        )
    }

    /// The raw reply datagrams of a GET_SERVICE dump (or, with `Some(k)`, a GET_DEST dump
    /// of `k`), for capturing the kernel's bytes (the VM tier records them as fixtures
    /// for the unit tests of [`super::wire`]).
    pub fn capture_dump(&mut self, k: Option<&ServiceKey>) -> Result<Vec<Vec<u8>>, IpvsError> {
        let seq = self.next_seq();
        let msg = match k {
            Some(k) => wire::get_dests(self.family, seq, k),
            None => wire::get_services(self.family, seq),
        };
        let kernel = |err| IpvsError::Kernel { op: "capture", err };
        self.sock.send(&msg, 0).map_err(kernel)?;
        let mut out = Vec::new();
        loop {
            let (buf, _) = self.sock.recv_from_full().map_err(kernel)?;
            let done = wire::parse(&buf)?
                .iter()
                .any(|r| matches!(r, Reply::Done { .. } | Reply::Error { .. }));
            out.push(buf);
            if done {
                return Ok(out);
            }
        }
    }

    /// Every (address-based) virtual service.
    pub fn services(&mut self) -> Result<Vec<Service>, IpvsError> {
        let seq = self.next_seq();
        let msg = wire::get_services(self.family, seq);
        let blocks = self.exchange(&msg, seq, "list services", true)?;
        let mut out = Vec::new();
        for b in blocks {
            out.extend(wire::service_of(&b)?);
        }
        Ok(out)
    }

    /// The real servers of service `k`.
    pub fn dests(&mut self, k: &ServiceKey) -> Result<Vec<DestState>, IpvsError> {
        let seq = self.next_seq();
        let msg = wire::get_dests(self.family, seq, k);
        let blocks = self.exchange(&msg, seq, "list real servers", true)?;
        blocks.iter().map(|b| wire::dest_of(b, k)).collect()
    }
}
