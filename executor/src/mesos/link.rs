//! How the executor notices an agent that is gone without closing its connections: a
//! host that crashed, a partition, a firewall that drops packets. Such an agent never
//! sends a FIN or RST, so without help the event stream would wait forever.
//!
//! Three guards, each for one phase of a connection:
//! - TCP keepalive on every connection to the agent (`SO_KEEPALIVE`, `TCP_KEEPIDLE`,
//!   `TCP_KEEPINTVL`, `TCP_KEEPCNT`): the kernel probes an idle stream and resets it
//!   when the peer stops answering (after idle + interval x count).
//! - A response timeout: connecting plus the status line and headers of the answer (a
//!   real agent answers at once, with 202 or the stream's 200). Catches an agent whose
//!   host accepts but whose process hangs, and SYNs that go nowhere.
//! - Stream silence: the agent sends HEARTBEAT events on the executor stream
//!   (REFERENCE.md section 1: every 30 minutes). A stream that carries nothing for
//!   longer than two heartbeat periods plus a margin is treated as lost, even if TCP
//!   still looks alive (a wedged agent process whose kernel still answers keepalives).
//!
//! Every loss leads to the same path as a closed stream: resubscribe after the random
//! backoff, give up after MESOS_RECOVERY_TIMEOUT (or at once without checkpointing).

use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::socket::{setsockopt, sockopt};

/// The agent's heartbeat period on the executor stream.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(30 * 60);

/// Timeouts and keepalive settings of the executor's connections to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Idle time before the first keepalive probe (whole seconds, at least 1).
    pub keepalive_idle: Duration,
    /// Time between probes (whole seconds, at least 1).
    pub keepalive_interval: Duration,
    /// Unanswered probes before the kernel resets the connection.
    pub keepalive_count: u32,
    /// Connecting and reading the answer's status line and headers.
    pub response_timeout: Duration,
    /// The event stream may carry nothing (no event, no HEARTBEAT) this long.
    pub stream_silence: Duration,
}

impl Default for Link {
    /// Keepalive 30 s idle, 10 s between 3 probes (a dead agent is noticed after about
    /// a minute), 30 s for an answer, two heartbeat periods + 5 minutes of silence.
    fn default() -> Self {
        Link::with_keepalive(Duration::from_secs(30))
    }
}

impl Link {
    /// The defaults with another keepalive idle time; the interval is a third of it
    /// (at least 1 s) and the count 3, so a dead peer is noticed after about 2 x idle.
    pub fn with_keepalive(idle: Duration) -> Link {
        let idle = idle.max(Duration::from_secs(1));
        Link {
            keepalive_idle: idle,
            keepalive_interval: (idle / 3).max(Duration::from_secs(1)),
            keepalive_count: 3,
            response_timeout: Duration::from_secs(30),
            stream_silence: 2 * HEARTBEAT_PERIOD + Duration::from_secs(5 * 60),
        }
    }

    /// Turns keepalive on for a connected socket, with this link's timing.
    pub fn apply<F: AsFd>(&self, sock: &F) -> nix::Result<()> {
        let secs = |d: Duration| u32::try_from(d.as_secs().max(1)).unwrap_or(u32::MAX);
        setsockopt(sock, sockopt::KeepAlive, &true)?;
        setsockopt(sock, sockopt::TcpKeepIdle, &secs(self.keepalive_idle))?;
        setsockopt(
            sock,
            sockopt::TcpKeepInterval,
            &secs(self.keepalive_interval),
        )?;
        setsockopt(sock, sockopt::TcpKeepCount, &self.keepalive_count.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::getsockopt;

    #[test]
    fn keepalive_is_set_on_the_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert!(
            !getsockopt(&s, sockopt::KeepAlive).unwrap(),
            "off by default"
        );
        let link = Link::with_keepalive(Duration::from_secs(7));
        link.apply(&s).unwrap();
        assert!(getsockopt(&s, sockopt::KeepAlive).unwrap());
        assert_eq!(getsockopt(&s, sockopt::TcpKeepIdle).unwrap(), 7);
        assert_eq!(getsockopt(&s, sockopt::TcpKeepInterval).unwrap(), 2);
        assert_eq!(getsockopt(&s, sockopt::TcpKeepCount).unwrap(), 3);
    }

    #[test]
    fn defaults_notice_a_dead_agent_within_about_a_minute() {
        let l = Link::default();
        let dead = l.keepalive_idle + l.keepalive_interval * l.keepalive_count;
        assert_eq!(dead, Duration::from_secs(60));
        assert!(l.stream_silence > 2 * HEARTBEAT_PERIOD);
        // Sub-second values are rounded up to what the kernel takes.
        let fast = Link::with_keepalive(Duration::from_millis(10));
        assert_eq!(fast.keepalive_idle, Duration::from_secs(1));
        assert_eq!(fast.keepalive_interval, Duration::from_secs(1));
    }
}
