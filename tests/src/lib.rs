//! berth-tests: the reusable test lab and, later, the Mesos agent double and e2e tests.
//!
//! # Layout
//! - [`lab`]: network lab in namespaces (LAN bridge + real dnsmasq DHCP server, a "host"
//!   netns whose veth plays the physical NIC, container netns), all RAII.

pub mod lab;
