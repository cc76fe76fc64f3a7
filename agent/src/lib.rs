//! # berth-agent
//!
//! The host's systemd service (resources for the Mesos agent, per-container metrics, garbage
//! collection). Not built yet: the binary refuses to run rather than pretend to.
