//! IPVS (the kernel's LVS) over generic netlink, family "IPVS" version 1: the director's
//! virtual services and real servers, without ipvsadm.
//!
//! # Layout
//! - [`types`]: services, real servers, forwarding methods, errors (plain data).
//! - [`wire`]: the messages, built and parsed without I/O (unit-tested byte for byte).
//! - [`socket`]: [`Ipvs`], the socket: family resolution, idempotent NEW/SET/DEL of
//!   services and real servers (EEXIST / ENOENT / ESRCH are [`Outcome::Already`]), dumps.
//! - [`diff`]: the wanted table of the services berth owns vs the kernel's, as a list of
//!   operations; never a flush, never a service berth does not own.
//!
//! ```no_run
//! # fn f() -> Result<(), berth_netcfg::ipvs::IpvsError> {
//! use berth_netcfg::ipvs::*;
//! let mut h = Ipvs::open()?; // needs `modprobe ip_vs` and CAP_NET_ADMIN
//! let key: ServiceKey = "10.0.0.1:80/tcp".parse()?;
//! h.add_service(&Service::new(key, "wrr"))?;
//! let rs = DestKey { addr: "10.0.0.11".parse().unwrap(), port: 80 };
//! h.add_dest(&key, &Dest::new(rs, FwdMethod::Masq, 1))?;
//! # Ok(()) }
//! ```

pub mod diff;
pub mod socket;
pub mod types;
pub mod wire;

pub use socket::{Ipvs, Outcome};
pub use types::{Dest, DestKey, DestState, FwdMethod, IpvsError, Protocol, Service, ServiceKey};
