//! berth's test lab, the Mesos agent double, end-to-end tests and benchmarks.
pub mod mesos;
pub mod rootfs;
