//! From the Mesos agent double to the Marathon double: the TaskStatus updates the agent
//! accepted from real berth-executor tasks become Marathon's view of those tasks (ids,
//! states, the container IP from `container_status.network_infos`, the `healthy` flag),
//! with the events Marathon would send. Marathon learns all of this from the same
//! updates, so both doubles agree on what the tasks are.

use std::net::IpAddr;

use serde_json::Value;

use super::MarathonDouble;
use crate::mesos::AgentDouble;

/// Follows one agent double's updates into one Marathon app.
#[derive(Debug)]
pub struct Bridge {
    app: String,
    ports: Vec<u16>,
    /// Updates already applied.
    seen: usize,
}

impl Bridge {
    /// Tasks of `app`, listening on `ports` (Marathon's `ports` of each task).
    pub fn new(app: &str, ports: &[u16]) -> Bridge {
        Bridge {
            app: app.to_string(),
            ports: ports.to_vec(),
            seen: 0,
        }
    }

    /// Applies the updates the agent accepted since the last call; returns how many.
    pub fn pump(&mut self, agent: &AgentDouble, marathon: &MarathonDouble) -> usize {
        let updates: Vec<Value> = agent.state().updates[self.seen..].to_vec();
        self.seen += updates.len();
        for u in &updates {
            self.apply(u, marathon);
        }
        updates.len()
    }

    fn apply(&self, u: &Value, m: &MarathonDouble) {
        let Some(id) = u["task_id"]["value"].as_str() else {
            return;
        };
        let state = u["state"].as_str().unwrap_or("TASK_STAGING");
        // A repeated state is news when it brings the address (TASK_STARTING once init
        // holds its lease): Marathon lists `ipAddresses` from any update carrying them.
        let ip = ip_of(u);
        let known = m.state().task_mut(id).map(|t| (t.state.clone(), t.ip));
        let news = match &known {
            Some((s, had)) => s != state || (ip.is_some() && *had != ip),
            None => true,
        };
        if news {
            m.status(&self.app, id, state, ip, &self.ports);
        }
        if let (Some(alive), true) = (u["healthy"].as_bool(), state == "TASK_RUNNING") {
            m.set_health(id, alive);
        }
    }
}

/// The first IP of a TaskStatus (`container_status.network_infos[*].ip_addresses[*]`).
pub fn ip_of(status: &Value) -> Option<IpAddr> {
    status["container_status"]["network_infos"]
        .as_array()?
        .iter()
        .flat_map(|n| n["ip_addresses"].as_array().cloned().unwrap_or_default())
        .find_map(|a| a["ip_address"].as_str()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn the_ip_comes_from_the_container_status() {
        let u = json!({"container_status": {"network_infos": [
            {"ip_addresses": [{"protocol": "IPv4", "ip_address": "10.9.0.7"}]}]}});
        assert_eq!(super::ip_of(&u), Some("10.9.0.7".parse().unwrap()));
        assert_eq!(super::ip_of(&json!({})), None);
    }
}
