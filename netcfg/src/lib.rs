//! berth-netcfg: container networking over netlink only (rtnetlink /
//! netlink-packet-route; never an `ip` or `tc` subprocess).
//!
//! # Layout
//! - [`names`]: interface/netns names, MACs and aliases derived from task ids (validated,
//!   IFNAMSIZ-limited, hashed so distinct ids stay distinct). GC recognises berth's
//!   objects by the `berth-` netns prefix and the `berth:` IFLA_IFALIAS.
//! - [`netns`]: create a named netns like `ip netns add` (bind mount under /run/netns),
//!   open, delete (idempotent), list berth's, and [`netns::run_in`] a future inside a
//!   netns on a dedicated thread (works from a current_thread runtime).
//! - [`conn`]: open an rtnetlink connection in the current netns; small lookups.
//! - [`link`]: [`link::macvlan::create_macvlan`] (created inside the container netns by
//!   fd, named eth0, stable MAC, MTU from the parent), [`link::vlan`] sub-interfaces of a
//!   trunk shared under a lock, [`link::teardown::teardown_container`] (idempotent, keeps
//!   going, returns all errors).
//! - [`tc`]: rates/sizes ([`tc::units`]), tbf encoding byte-compatible with `tc`
//!   ([`tc::tbf`]), egress tbf + ingress ifb/mirred shaping, live change, read-back
//!   ([`tc::shape`]).
//! - [`stats`]: a link's counters (IFLA_STATS64) read inside a netns ([`stats::link_stats_in`]).
//! - [`setup`]: the executor's one call: [`setup::setup`] (netns + VLAN + macvlan + tc,
//!   rolled back on failure) and [`setup::teardown`].
//! - [`ipvs`]: the IPVS table over generic netlink (LVS director): services, real servers,
//!   diff-based sync of the services berth owns.
//! - [`dhcp`]: the DHCPv4 client berth-init runs inside the container:
//!   [`dhcp::Client::acquire`] (with a timeout), [`dhcp::Client::keep`] (renew/rebind/
//!   expiry/NAK until a shutdown future), [`dhcp::Client::release`], and
//!   [`dhcp::Client::status`] (a watch of [`dhcp::Status`] for `ctl status`); the lease
//!   is persisted for INIT-REBOOT after a restart.
//!
//! Typical executor sequence (host netns, tokio runtime):
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use berth_netcfg::{conn, names::*, netns, link::macvlan::*, tc::{shape, tbf::Tbf}};
//! let name = NetnsName::for_task("app.instance-1")?;
//! let ns = netns::create(std::path::Path::new(netns::NETNS_RUN_DIR), &name).await?;
//! let host = conn::connect()?;
//! let info = create_macvlan(&host, &ns, &MacvlanSpec::new(IfName::new("eth1")?, "app.instance-1")).await?;
//! let limits = shape::Limits {
//!     egress: Some(Tbf::new("100mbit".parse()?, None, info.mtu)?),
//!     ingress: Some(Tbf::new("100mbit".parse()?, None, info.mtu)?),
//! };
//! netns::run_in(&ns, move || async move {
//!     let h = conn::connect().map_err(berth_netcfg::tc::TcError::Connect)?;
//!     shape::apply(&h, &IfName::new("eth0")?, &limits).await
//! }).await??;
//! # Ok(()) }
//! ```

pub mod conn;
pub mod dhcp;
pub mod ipvs;
pub mod link;
pub mod names;
pub mod netns;
pub mod setup;
pub mod stats;
pub mod tc;
