//! How the executor notices an agent that is gone without closing its connections: a
//! host that crashed, a partition, a firewall that drops packets. Such an agent never
//! sends a FIN or RST, so without help the event stream would wait forever.
//!
//! Three guards, each for one phase of a connection:
//! - TCP keepalive on every connection to the agent (berth-http sets `SO_KEEPALIVE`,
//!   `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`): the kernel probes an idle stream
//!   and resets it when the peer stops answering (after idle + 3 x idle/3).
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

use std::time::Duration;

/// The agent's heartbeat period on the executor stream.
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(30 * 60);

/// Timeouts and keepalive settings of the executor's connections to the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Idle time before the first keepalive probe (whole seconds, at least 1); berth-http
    /// probes every third of it, three times.
    pub keepalive_idle: Duration,
    /// Connecting (TCP and TLS) and reading the answer's status line and headers.
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
    /// The defaults with another keepalive idle time (a dead peer is noticed after about
    /// 2 x idle: berth-http probes every idle/3, three times).
    pub fn with_keepalive(idle: Duration) -> Link {
        Link {
            keepalive_idle: idle.max(Duration::from_secs(1)),
            response_timeout: Duration::from_secs(30),
            stream_silence: 2 * HEARTBEAT_PERIOD + Duration::from_secs(5 * 60),
        }
    }

    /// berth-http's client options for this link.
    pub fn options(&self, tls: Option<berth_http::tls::ClientTls>) -> berth_http::client::Options {
        berth_http::client::Options {
            tls,
            connect_timeout: self.response_timeout,
            response_timeout: self.response_timeout,
            keepalive: Some(self.keepalive_idle),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_notice_a_dead_agent_within_about_a_minute() {
        let l = Link::default();
        let o = l.options(None);
        let idle = o.keepalive.unwrap();
        // berth-http: probes every idle/3, three of them.
        assert_eq!(idle + idle / 3 * 3, Duration::from_secs(60));
        assert_eq!(o.response_timeout, Duration::from_secs(30));
        assert!(l.stream_silence > 2 * HEARTBEAT_PERIOD);
        // Sub-second values are rounded up to what the kernel takes.
        let fast = Link::with_keepalive(Duration::from_millis(10));
        assert_eq!(fast.keepalive_idle, Duration::from_secs(1));
    }
}
