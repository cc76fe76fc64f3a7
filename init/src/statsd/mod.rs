//! App metrics over statsd (the `statsd:` section): a UDP socket on 127.0.0.1, a thread
//! that parses and aggregates what arrives, and the last step's aggregates on the status
//! socket (`statsd` object), where berth-agent reads them and exports them with the
//! container's tags. A malformed line is counted and dropped; nothing the app sends can
//! stop init or grow its memory past the limits.
//!
//! # Layout
//! - [`parse`]: one line.
//! - [`aggregate`]: one step.
//! - this file: the socket, the thread and the status.

pub mod aggregate;
pub mod parse;

use std::net::UdpSocket;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::spec::statsd::StatsdSpec;
use aggregate::{Aggregate, Aggregator};

/// Largest datagram read (statsd clients keep packets under the MTU).
const MAX_PACKET: usize = 65_536;

/// The `statsd` object of the status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatsdStatus {
    /// UDP port on 127.0.0.1.
    pub port: u16,
    /// Step length, seconds.
    pub step_s: f64,
    /// Steps completed.
    pub steps: u64,
    /// Unix time (seconds) of the end of the last step.
    pub last_step_end: Option<u64>,
    /// Lines parsed since start.
    pub received: u64,
    /// Lines dropped as malformed since start.
    pub malformed: u64,
    /// Samples dropped since start because the key limit was reached.
    pub dropped: u64,
    /// The last completed step's aggregates.
    pub metrics: Vec<Aggregate>,
}

/// The bound socket, before the thread runs.
pub struct Statsd {
    socket: UdpSocket,
    spec: StatsdSpec,
    /// Shared with the status socket.
    pub status: Arc<Mutex<StatsdStatus>>,
}

/// Binds 127.0.0.1:`port` now (before any service starts, so no early packet is lost and
/// a port already taken fails start-up with a clear error).
pub fn bind(spec: &StatsdSpec) -> std::io::Result<Statsd> {
    let socket = UdpSocket::bind(("127.0.0.1", spec.port()))?;
    let status = StatsdStatus {
        port: spec.port(),
        step_s: spec.step().as_secs_f64(),
        ..Default::default()
    };
    Ok(Statsd {
        socket,
        spec: spec.clone(),
        status: Arc::new(Mutex::new(status)),
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Statsd {
    /// Starts the thread (call with every signal blocked; the thread inherits the mask).
    pub fn start(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("statsd".into())
            .spawn(move || self.run())
            .map(|_| ())
    }

    fn run(self) {
        let step = self.spec.step();
        let mut agg = Aggregator::new(self.spec.max_keys());
        let mut buf = vec![0u8; MAX_PACKET];
        let mut next = Instant::now() + step;
        let (mut received, mut malformed) = (0u64, 0u64);
        loop {
            let left = next.saturating_duration_since(Instant::now());
            let _ = self
                .socket
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            if let Ok(n) = self.socket.recv(&mut buf) {
                for l in String::from_utf8_lossy(&buf[..n]).split('\n') {
                    let l = l.trim_end_matches('\r');
                    if l.is_empty() {
                        continue;
                    }
                    match parse::line(l) {
                        Ok(s) => {
                            received += 1;
                            agg.add(&s);
                        }
                        Err(_) => malformed += 1,
                    }
                }
            }
            if Instant::now() >= next {
                let metrics = agg.flush(step);
                if let Ok(mut st) = self.status.lock() {
                    st.steps += 1;
                    st.last_step_end = Some(unix_now());
                    st.received = received;
                    st.malformed = malformed;
                    st.dropped = agg.dropped;
                    st.metrics = metrics;
                }
                next += step;
                // After a long stall (suspended container), restart the grid from now.
                if next < Instant::now() {
                    next = Instant::now() + step;
                }
            }
        }
    }
}

/// The status object, for the status socket.
pub fn json(status: &Mutex<StatsdStatus>) -> serde_json::Value {
    match status.lock() {
        Ok(s) => serde_json::to_value(&*s).unwrap_or_default(),
        Err(_) => serde_json::Value::Null,
    }
}
