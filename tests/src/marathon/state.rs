//! What the Marathon double knows: apps and their tasks, in Marathon's JSON shapes
//! (REFERENCE.md section 2), the open event streams, and the requests it answered.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_http::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Mesos states after which Marathon drops a task from `/v2/apps/{id}/tasks`.
pub const TERMINAL: &[&str] = &[
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_LOST",
    "TASK_ERROR",
    "TASK_DROPPED",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
];

/// One task as Marathon tracks it.
#[derive(Debug, Clone)]
pub struct Task {
    pub app_id: String,
    pub id: String,
    pub host: String,
    pub ip: Option<IpAddr>,
    pub ports: Vec<u16>,
    pub state: String,
    /// Last health result (None: no check has reported).
    pub alive: Option<bool>,
    pub staged_at: String,
    pub started_at: Option<String>,
}

impl Task {
    /// The `/v2/apps/{id}/tasks` element.
    pub fn json(&self) -> Value {
        let mut t = json!({
            "appId": self.app_id,
            "id": self.id,
            "host": self.host,
            "slaveId": "marathon-double-S0",
            "ipAddresses": self.ip_addresses(),
            "ports": self.ports,
            "servicePorts": [],
            "stagedAt": self.staged_at,
            "state": self.state,
            "version": VERSION,
            "localVolumes": [],
        });
        if let Some(s) = &self.started_at {
            t["startedAt"] = json!(s);
        }
        if let Some(alive) = self.alive {
            t["healthCheckResults"] = json!([{
                "alive": alive,
                "consecutiveFailures": if alive { 0 } else { 1 },
                "firstSuccess": now(),
                "lastFailure": null,
                "lastSuccess": now(),
                "lastFailureCause": null,
                "instanceId": self.id,
            }]);
        }
        t
    }

    fn ip_addresses(&self) -> Value {
        match self.ip {
            Some(ip) => json!([{
                "ipAddress": ip.to_string(),
                "protocol": if ip.is_ipv4() { "IPv4" } else { "IPv6" },
            }]),
            None => json!([]),
        }
    }

    /// A `status_update_event`'s data.
    pub fn status_event(&self) -> Value {
        json!({
            "eventType": "status_update_event",
            "timestamp": now(),
            "slaveId": "marathon-double-S0",
            "taskId": self.id,
            "taskStatus": self.state,
            "message": "",
            "appId": self.app_id,
            "host": self.host,
            "ipAddresses": self.ip_addresses(),
            "ports": self.ports,
            "version": VERSION,
        })
    }

    /// A `health_status_changed_event`'s data (Marathon 1.4+: by instance id).
    pub fn health_event(&self, alive: bool) -> Value {
        json!({
            "eventType": "health_status_changed_event",
            "timestamp": now(),
            "appId": self.app_id,
            "instanceId": self.id,
            "version": VERSION,
            "alive": alive,
        })
    }

    /// An `unhealthy_task_kill_event`'s data.
    pub fn unhealthy_kill_event(&self) -> Value {
        json!({
            "eventType": "unhealthy_task_kill_event",
            "timestamp": now(),
            "appId": self.app_id,
            "taskId": self.id,
            "instanceId": self.id,
            "version": VERSION,
            "reason": "HealthCheck failed",
            "host": self.host,
            "slaveId": "marathon-double-S0",
        })
    }
}

const VERSION: &str = "2026-12-07T00:00:00.000Z";

/// An open `/v2/events` stream and the event types it asked for (None: all).
#[derive(Debug)]
pub struct Stream {
    pub types: Option<BTreeSet<String>>,
    pub tx: mpsc::Sender<Bytes>,
}

/// One answered request: method, path with query, status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub status: u16,
}

#[derive(Debug, Default)]
pub struct State {
    /// `Authorization` header value required, if any.
    pub auth: Option<String>,
    /// App id -> task id -> task.
    pub apps: BTreeMap<String, BTreeMap<String, Task>>,
    pub streams: Vec<Stream>,
    pub requests: Vec<Seen>,
    /// Every event sent (name, data), in order.
    pub events: Vec<(String, Value)>,
}

impl State {
    pub fn task_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.apps.values_mut().find_map(|tasks| tasks.get_mut(id))
    }

    /// Send an event to every stream that asked for its type; streams whose reader is
    /// gone or too slow (a full buffer) are closed, as Marathon drops slow consumers.
    pub fn emit(&mut self, name: &str, data: Value) {
        let frame = Bytes::from(format!("event: {name}\r\ndata: {data}\r\n\r\n"));
        self.streams.retain(|s| {
            if s.types.as_ref().is_some_and(|t| !t.contains(name)) {
                return !s.tx.is_closed();
            }
            s.tx.try_send(frame.clone()).is_ok()
        });
        self.events.push((name.to_string(), data));
    }

    /// A keep-alive comment to every stream.
    pub fn keepalive(&mut self) {
        let frame = Bytes::from_static(b": keep-alive\r\n\r\n");
        self.streams
            .retain(|s| s.tx.try_send(frame.clone()).is_ok());
    }
}

/// `2026-12-07T08:01:02.345Z` for now (Marathon's timestamp format).
pub fn now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_look_like_marathons() {
        let t = super::now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T");
    }
}
