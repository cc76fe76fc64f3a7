//! What dbauth asks of Marathon, behind a small trait: the tasks of an app
//! (`GET /v2/apps/{id}/tasks`). The matching (which states count, which address) is here,
//! so every implementation answers the same question the same way.

use std::future::Future;
use std::net::IpAddr;

use crate::marathon::types::Task;

/// Marathon could not be asked (a failure, not a "no").
#[derive(Debug, thiserror::Error)]
#[error("Marathon: {0}")]
pub struct LookupError(pub String);

/// The tasks of an app, as Marathon lists them (an unknown app: an empty list).
pub trait Tasks: Send + Sync + 'static {
    fn app_tasks(&self, app: &str) -> impl Future<Output = Result<Vec<Task>, LookupError>> + Send;
}

/// The id of the task of `app` in one of `states` that has address `ip`, if any.
pub fn find<'a>(tasks: &'a [Task], app: &str, ip: IpAddr, states: &[String]) -> Option<&'a Task> {
    tasks.iter().find(|t| {
        t.app_id == app
            && states.contains(&t.state)
            && t.ip_addresses.iter().any(|a| a.ip_address == ip)
    })
}

/// Whether `task_id` is among `tasks` in one of `states`.
pub fn alive(tasks: &[Task], task_id: &str, states: &[String]) -> bool {
    tasks
        .iter()
        .any(|t| t.id == task_id && states.contains(&t.state))
}

/// An IPv4-mapped IPv6 peer (`::ffff:10.0.0.5`, a dual-stack listener) as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::types::tasks;

    #[test]
    fn matching() {
        let body = br#"{"tasks":[
            {"appId":"/a","id":"a.1","state":"TASK_RUNNING","ipAddresses":[{"ipAddress":"10.0.0.5"}]},
            {"appId":"/a","id":"a.2","state":"TASK_STARTING","ipAddresses":[{"ipAddress":"10.0.0.6"}]},
            {"appId":"/b","id":"b.1","state":"TASK_RUNNING","ipAddresses":[{"ipAddress":"10.0.0.7"}]}]}"#;
        let t = tasks(body).unwrap();
        let running = vec!["TASK_RUNNING".to_string()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            find(&t, "/a", ip("10.0.0.5"), &running).map(|t| t.id.as_str()),
            Some("a.1")
        );
        assert!(find(&t, "/a", ip("10.0.0.6"), &running).is_none());
        assert!(find(&t, "/a", ip("10.0.0.7"), &running).is_none());
        let both = vec!["TASK_RUNNING".into(), "TASK_STARTING".into()];
        assert!(find(&t, "/a", ip("10.0.0.6"), &both).is_some());
        assert!(
            alive(&t, "a.1", &running) && !alive(&t, "a.2", &running) && !alive(&t, "a.9", &both)
        );
        assert_eq!(canonical(ip("::ffff:10.0.0.5")), ip("10.0.0.5"));
        assert_eq!(canonical(ip("fd00::1")), ip("fd00::1"));
    }
}
