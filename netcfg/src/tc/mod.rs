//! Bandwidth limits over netlink (no `tc` subprocess).
//!
//! - `units`: typed rates and sizes parsed from human strings (`100mbit`, `10MiB`).
//! - `tbf`: the tbf qdisc's TCA_OPTIONS, encoded byte for byte as `tc` does (rtnetlink has
//!   no tbf support), and decoded from dumps.
//! - `shape`: egress tbf on the container's eth0; ingress qdisc + matchall filter + mirred
//!   redirect to an ifb in the same netns shaped with tbf; change live, remove, read back.

pub mod shape;
pub mod tbf;
pub mod units;

/// Errors of traffic control.
#[derive(Debug, thiserror::Error)]
pub enum TcError {
    #[error("invalid {what} {text:?}: {why}")]
    Parse {
        what: &'static str,
        text: String,
        why: String,
    },
    #[error("rate {rate} is too small for MTU {mtu}: at least {min} is needed (ten full-size frames per second)")]
    RateTooSmall {
        rate: units::Rate,
        mtu: u32,
        min: units::Rate,
    },
    #[error("burst {burst} is smaller than one full-size frame at MTU {mtu} ({frame} bytes); such packets would be dropped")]
    BurstTooSmall {
        burst: units::Size,
        mtu: u32,
        frame: u64,
    },
    #[error("netlink connection")]
    Connect(#[source] std::io::Error),
    #[error("interface {name} does not exist")]
    NoLink { name: String },
    #[error("failed to {what} on {dev}")]
    Netlink {
        what: &'static str,
        dev: String,
        #[source]
        err: rtnetlink::Error,
    },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
}
