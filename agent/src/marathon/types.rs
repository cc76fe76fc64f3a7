//! Marathon's JSON, as the client reads it: tasks of `GET /v2/apps/{id}/tasks` and the
//! events of `GET /v2/events` (REFERENCE.md section 2). Unknown fields are ignored, as
//! Marathon adds fields across versions; the fields berth needs are required.

use std::net::IpAddr;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("bad {what} JSON")]
    Json {
        what: &'static str,
        #[source]
        err: serde_json::Error,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpAddress {
    pub ip_address: IpAddr,
    #[serde(default)]
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckResult {
    pub alive: bool,
}

/// One task of an app.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub app_id: String,
    pub id: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub ip_addresses: Vec<IpAddress>,
    #[serde(default)]
    pub ports: Vec<u16>,
    pub state: String,
    #[serde(default)]
    pub health_check_results: Vec<HealthCheckResult>,
}

impl Task {
    pub fn running(&self) -> bool {
        self.state == "TASK_RUNNING"
    }

    /// All health checks alive: Some(true); any failing: Some(false); none yet: None.
    pub fn healthy(&self) -> Option<bool> {
        if self.health_check_results.is_empty() {
            None
        } else {
            Some(self.health_check_results.iter().all(|r| r.alive))
        }
    }

    /// The task's first IPv4 address (the container's DHCP address).
    pub fn ipv4(&self) -> Option<IpAddr> {
        self.ip_addresses
            .iter()
            .map(|a| a.ip_address)
            .find(IpAddr::is_ipv4)
    }
}

#[derive(Debug, Deserialize)]
struct Tasks {
    tasks: Vec<Task>,
}

/// Parse a `GET /v2/apps/{id}/tasks` body.
pub fn tasks(body: &[u8]) -> Result<Vec<Task>, DecodeError> {
    serde_json::from_slice::<Tasks>(body)
        .map(|t| t.tasks)
        .map_err(|err| DecodeError::Json { what: "tasks", err })
}

/// `status_update_event`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusUpdate {
    pub app_id: String,
    pub task_id: String,
    pub task_status: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub ip_addresses: Vec<IpAddress>,
    #[serde(default)]
    pub ports: Vec<u16>,
}

/// `health_status_changed_event` (Marathon 1.4+ names the instance, older the task).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthChanged {
    pub app_id: String,
    pub task_id: Option<String>,
    pub instance_id: Option<String>,
    pub alive: bool,
}

/// `unhealthy_task_kill_event` and `failed_health_check_event`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRef {
    pub app_id: String,
    pub task_id: Option<String>,
    pub instance_id: Option<String>,
}

impl HealthChanged {
    /// Whether this event is about task `id` (by task id, or the instance the task is of).
    pub fn is_about(&self, id: &str) -> bool {
        about(&self.task_id, &self.instance_id, id)
    }
}

impl TaskRef {
    pub fn is_about(&self, id: &str) -> bool {
        about(&self.task_id, &self.instance_id, id)
    }
}

fn about(task: &Option<String>, instance: &Option<String>, id: &str) -> bool {
    task.as_deref() == Some(id)
        || instance
            .as_deref()
            .is_some_and(|i| id == i || id.starts_with(&format!("{i}.")))
}

/// A typed event of `/v2/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    StatusUpdate(StatusUpdate),
    HealthChanged(HealthChanged),
    UnhealthyTaskKill(TaskRef),
    FailedHealthCheck(TaskRef),
    /// Any other event type (deployments, subscriptions, ...), by name.
    Other(String),
}

/// Turn an SSE event (its `event:` name and `data:` JSON) into a typed event.
pub fn event(name: &str, data: &str) -> Result<Event, DecodeError> {
    fn de<T: for<'a> Deserialize<'a>>(what: &'static str, data: &str) -> Result<T, DecodeError> {
        serde_json::from_str(data).map_err(|err| DecodeError::Json { what, err })
    }
    Ok(match name {
        "status_update_event" => Event::StatusUpdate(de("status_update_event", data)?),
        "health_status_changed_event" => {
            Event::HealthChanged(de("health_status_changed_event", data)?)
        }
        "unhealthy_task_kill_event" => {
            Event::UnhealthyTaskKill(de("unhealthy_task_kill_event", data)?)
        }
        "failed_health_check_event" => {
            Event::FailedHealthCheck(de("failed_health_check_event", data)?)
        }
        other => Event::Other(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_body() {
        let body = br#"{"tasks":[{"appId":"/shop/web","id":"shop_web.a1","host":"node1","slaveId":"S1",
            "ipAddresses":[{"ipAddress":"fd00::5","protocol":"IPv6"},{"ipAddress":"10.0.0.5","protocol":"IPv4"}],
            "ports":[31000],"state":"TASK_RUNNING","startedAt":"2026-01-01T00:00:00.000Z",
            "healthCheckResults":[{"alive":true,"consecutiveFailures":0,"taskId":"shop_web.a1"}]},
            {"appId":"/shop/web","id":"shop_web.a2","state":"TASK_STAGING"}]}"#;
        let t = tasks(body).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].ipv4(), Some("10.0.0.5".parse().unwrap()));
        assert!(t[0].running() && t[0].healthy() == Some(true));
        assert!(!t[1].running() && t[1].healthy().is_none() && t[1].ipv4().is_none());
        assert!(tasks(br#"{"apps":[]}"#).is_err());
    }

    #[test]
    fn events() {
        let e = event(
            "status_update_event",
            r#"{"eventType":"status_update_event","timestamp":"t","slaveId":"S1","taskId":"shop_web.a1",
               "taskStatus":"TASK_KILLED","appId":"/shop/web","host":"node1",
               "ipAddresses":[{"ipAddress":"10.0.0.5","protocol":"IPv4"}],"ports":[],"version":"v"}"#,
        )
        .unwrap();
        let Event::StatusUpdate(s) = e else {
            panic!("{e:?}")
        };
        assert_eq!(
            (s.task_status.as_str(), s.ip_addresses.len()),
            ("TASK_KILLED", 1)
        );

        let e = event(
            "health_status_changed_event",
            r#"{"appId":"/a","instanceId":"a.marathon-1","alive":false}"#,
        )
        .unwrap();
        let Event::HealthChanged(h) = e else { panic!() };
        assert!(h.is_about("a.marathon-1._app.2") && !h.is_about("a.marathon-10"));
        assert!(
            matches!(event("deployment_info", "{}").unwrap(), Event::Other(n) if n == "deployment_info")
        );
        assert!(event("unhealthy_task_kill_event", "{").is_err());
    }
}
