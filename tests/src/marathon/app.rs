//! What Marathon makes of an app definition (the JSON an operator POSTs to `/v2/apps`)
//! for one task of an app with `"executor"`: the TaskInfo it sends in the LAUNCH and the
//! executor the Mesos agent starts for it ([`ExecutorSpec`]: the command line with the
//! app's `cmd` appended, Marathon's variables and the app's `env`). REFERENCE.md section 2.
//!
//! Strict: a key this double does not model is refused by name rather than dropped, so
//! an example that uses one fails its test instead of passing without it.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::mesos::process::ExecutorSpec;

/// The app keys modelled here.
const KEYS: [&str; 12] = [
    "id",
    "executor",
    "cmd",
    "instances",
    "cpus",
    "mem",
    "disk",
    "portDefinitions",
    "env",
    "labels",
    "healthChecks",
    "taskKillGracePeriodSeconds",
];

/// One task of an app, as Marathon launches it.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The TaskInfo (Mesos v1 JSON) of the LAUNCH event.
    pub task: Value,
    /// The executor process the agent starts for it.
    pub executor: ExecutorSpec,
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{what}: not an object"))
}

fn number(app: &Map<String, Value>, key: &str, default: f64) -> Result<f64, String> {
    match app.get(key) {
        None => Ok(default),
        Some(v) => v.as_f64().ok_or_else(|| format!("{key}: not a number")),
    }
}

/// Marathon's task name for an app id: the path reversed, joined by dots
/// (`/weather/api` -> `api.weather`).
pub fn task_name(app_id: &str) -> String {
    let parts: Vec<&str> = app_id.split('/').filter(|p| !p.is_empty()).rev().collect();
    parts.join(".")
}

fn scalar(name: &str, value: f64) -> Value {
    json!({"name": name, "type": "SCALAR", "scalar": {"value": value}, "role": "*"})
}

/// The TaskInfo's health check for one of the app's `healthChecks` (Mesos-side
/// protocols only: Marathon runs HTTP/TCP checks itself and sends none for them).
fn health_check(h: &Value, ports: &[u16]) -> Result<Option<Value>, String> {
    let h = object(h, "healthChecks[0]")?;
    let protocol = h.get("protocol").and_then(Value::as_str).unwrap_or("HTTP");
    let port = match (h.get("port"), h.get("portIndex")) {
        (Some(p), _) => p.as_u64().ok_or("healthChecks[0].port: not a port")?,
        (None, i) => {
            let i = i.and_then(Value::as_u64).unwrap_or(0) as usize;
            u64::from(
                *ports
                    .get(i)
                    .ok_or("healthChecks[0].portIndex: no such port")?,
            )
        }
    };
    let secs = |key: &str, default: f64| -> Result<f64, String> {
        number(h, key, default).map_err(|e| format!("healthChecks[0].{e}"))
    };
    let mut check = json!({
        "delay_seconds": secs("delaySeconds", 15.0)?,
        "interval_seconds": secs("intervalSeconds", 60.0)?,
        "timeout_seconds": secs("timeoutSeconds", 20.0)?,
        "consecutive_failures": secs("maxConsecutiveFailures", 3.0)? as u32,
        "grace_period_seconds": secs("gracePeriodSeconds", 300.0)?,
    });
    match protocol {
        "MESOS_HTTP" => {
            let path = h.get("path").and_then(Value::as_str).unwrap_or("/");
            check["type"] = json!("HTTP");
            check["http"] = json!({"scheme": "http", "port": port, "path": path});
        }
        "MESOS_TCP" => {
            check["type"] = json!("TCP");
            check["tcp"] = json!({"port": port});
        }
        "HTTP" | "HTTPS" | "TCP" => return Ok(None),
        other => {
            return Err(format!(
                "healthChecks[0].protocol: {other:?} is not modelled"
            ))
        }
    }
    Ok(Some(check))
}

/// Task `task_id` of `app`, its ports taken from `host_ports` (what the offer gave, one
/// per `portDefinitions` entry), its executor started from `executor` (the host's path
/// of the binary the app names, e.g. a test build standing in for
/// `/usr/libexec/berth/berth-executor`) with its sandbox at `sandbox`.
pub fn launch(
    app: &Value,
    task_id: &str,
    host_ports: &[u16],
    executor: &Path,
    sandbox: &Path,
) -> Result<Launch, String> {
    let app = object(app, "the app")?;
    if let Some(k) = app.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!("{k}: not modelled by the Marathon double"));
    }
    let id = app
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| id.starts_with('/'))
        .ok_or("id: an absolute app id is required")?;
    if app.get("executor").and_then(Value::as_str).is_none() {
        return Err("executor: berth's apps name berth-executor here".into());
    }
    let port_defs = app
        .get("portDefinitions")
        .map(|p| p.as_array().cloned().ok_or("portDefinitions: not a list"))
        .transpose()?
        .unwrap_or_default();
    if host_ports.len() < port_defs.len() {
        return Err(format!(
            "{} ports asked, {} offered",
            port_defs.len(),
            host_ports.len()
        ));
    }
    let ports = &host_ports[..port_defs.len()];
    let labels: Vec<(String, String)> = match app.get("labels") {
        None => Vec::new(),
        Some(l) => object(l, "labels")?
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .ok_or_else(|| format!("labels.{k}: not a string"))?;
                Ok((k.clone(), v.to_string()))
            })
            .collect::<Result<_, String>>()?,
    };
    let env: Vec<(String, String)> = match app.get("env") {
        None => Vec::new(),
        Some(e) => object(e, "env")?
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().ok_or_else(|| format!("env.{k}: not a string"))?;
                Ok((k.clone(), v.to_string()))
            })
            .collect::<Result<_, String>>()?,
    };

    let mut spec = ExecutorSpec::new(executor, "marathon-framework", task_id, id, sandbox);
    spec.cmd = app.get("cmd").and_then(Value::as_str).map(str::to_string);
    spec.ports = ports.to_vec();
    spec.labels = labels.clone();
    spec.env = env;

    let mut resources = vec![scalar("cpus", number(app, "cpus", 1.0)?)];
    resources.push(scalar("mem", number(app, "mem", 128.0)?));
    let disk = number(app, "disk", 0.0)?;
    if disk > 0.0 {
        resources.push(scalar("disk", disk));
    }
    if !ports.is_empty() {
        let ranges: Vec<Value> = ports
            .iter()
            .map(|p| json!({"begin": p, "end": p}))
            .collect();
        resources.push(
            json!({"name": "ports", "type": "RANGES", "ranges": {"range": ranges}, "role": "*"}),
        );
    }
    let discovery_ports: Vec<Value> = port_defs
        .iter()
        .zip(ports)
        .map(|(d, p)| {
            let mut v = json!({"number": p, "protocol": d["protocol"].as_str().unwrap_or("tcp")});
            if let Some(n) = d["name"].as_str() {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let path = executor.display();
    let mut task = json!({
        "name": task_name(id),
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-double-S0"},
        "resources": resources,
        "executor": {
            "executor_id": {"value": spec.executor_id},
            "framework_id": {"value": spec.framework_id},
            "command": {
                "value": format!("chmod ug+rx '{path}' && exec '{path}'"),
                "shell": true,
                "environment": {"variables": spec
                    .environment("(agent)", "agent-double-S0")
                    .into_iter()
                    // The agent adds its own (MESOS_*, PATH) when it starts the executor.
                    .filter(|(k, _)| k == "MESOS_TASK_ID" || !(k.starts_with("MESOS_") || k == "PATH"))
                    .map(|(k, v)| json!({"name": k, "type": "VALUE", "value": v}))
                    .collect::<Vec<_>>()}
            },
            "resources": []
        },
        "labels": {"labels": labels
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect::<Vec<_>>()},
        "discovery": {"visibility": "FRAMEWORK", "name": task_name(id), "ports": {"ports": discovery_ports}},
    });
    if let Some(g) = app.get("taskKillGracePeriodSeconds") {
        let s = g
            .as_f64()
            .ok_or("taskKillGracePeriodSeconds: not a number")?;
        task["kill_policy"] = json!({"grace_period": {"nanoseconds": (s * 1e9) as i64}});
    }
    let checks = app
        .get("healthChecks")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if checks.len() > 1 {
        return Err("healthChecks: Mesos takes one health check per task".into());
    }
    if let Some(h) = checks.first() {
        if let Some(check) = health_check(h, ports)? {
            task["health_check"] = check;
        }
    }
    Ok(Launch {
        task,
        executor: spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_refusals() {
        assert_eq!(task_name("/weather/api"), "api.weather");
        let exe = Path::new("/x/berth-executor");
        let sb = Path::new("/tmp/sb");
        let app = json!({"id": "/a", "executor": "/x", "constraints": []});
        let err = launch(&app, "a.1", &[], exe, sb).unwrap_err();
        assert!(err.starts_with("constraints:"), "{err}");
        let app = json!({"id": "/a", "executor": "/x", "portDefinitions": [{"port": 0}]});
        assert!(launch(&app, "a.1", &[], exe, sb).is_err());
        let app = json!({"id": "/a", "executor": "/x", "portDefinitions": [{"port": 0}],
            "healthChecks": [{"protocol": "MESOS_TCP"}]});
        let l = launch(&app, "a.1", &[31005], exe, sb).unwrap();
        assert_eq!(l.task["health_check"]["tcp"]["port"], 31005);
        assert_eq!(l.executor.ports, [31005]);
    }
}
