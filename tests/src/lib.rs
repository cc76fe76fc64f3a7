//! berth-tests: the reusable test lab, the Mesos agent double, end-to-end tests and
//! benchmarks.
//!
//! # Layout
//! - [`dbauth`]: dbauth's scaffolding (its config, start, HTTP and SQL from a netns).
//! - [`falcon`]: a strict Open-Falcon agent double (transfer's validation rules).
//! - [`lab`]: network lab in namespaces (LAN bridge + real dnsmasq DHCP server, a "host"
//!   netns whose veth plays the physical NIC, container netns), all RAII.
//! - [`login`]: berth-init with a `login:` section in namespaces, a user CA, an ssh client.
//! - [`mariadb`]: a real MariaDB server in a netns on a temp datadir, for dbauth.
//! - [`lvs_director`]: a strict, recording double of the LVS director's real-server API.
//! - [`lvs_lab`]: the real director on real IPVS (VM tier): VIP, client netns, the table.
//! - [`marathon`]: a strict Marathon API double (tasks, SSE events) fed from the Mesos one.
//! - [`mesos`]: a strict Mesos agent double (the real agent's validation, in its order)
//!   and the end-to-end harness that launches berth-executor against it.
//! - [`rootfs`]: a small busybox root filesystem for container tests.
//! - [`minbase`]: the cached Debian minbase root (debootstrap) that tests copy.
//! - [`oci`]: OCI image layouts (gzip tar layers, sha256 blobs, tagged index) for tests.

pub mod agent;
pub mod dbauth;
pub mod falcon;
pub mod lab;
pub mod login;
pub mod login_ca;
pub mod lvs_director;
pub mod lvs_lab;
pub mod marathon;
pub mod mariadb;
pub mod mesos;
pub mod minbase;
pub mod oci;
pub mod rootfs;
pub mod vm_lvm;
