//! The director's in-memory state: one [`Table`] per owned virtual service, fed by the
//! two writers: berth-init's API calls ([`super::api`]) and Marathon (full task listings
//! and events, here). The IPVS table is made to match [`Director::wanted`] by diffs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use berth_netcfg::ipvs::diff::Wanted;
use berth_netcfg::ipvs::ServiceKey;

use super::config::VirtualService;
use super::table::{Seen, Table};
use super::wanted;
use crate::marathon::types::{Event, Task};

/// A registration younger than this survives a listing that lacks its task.
pub const LISTING_GRACE: Duration = Duration::from_secs(30);

/// A task Marathon told us about: where it is and its last health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Known {
    ip: IpAddr,
    port: u16,
    healthy: Option<bool>,
}

/// One owned service and its real servers.
#[derive(Debug, Clone)]
pub struct Owned {
    pub vs: VirtualService,
    pub table: Table,
    /// Marathon task id -> its address and health (maps health events to an IP).
    tasks: BTreeMap<String, Known>,
}

#[derive(Debug, Clone)]
pub struct Director {
    pub services: Vec<Owned>,
}

impl Director {
    pub fn new(services: &[VirtualService]) -> Director {
        Director {
            services: services
                .iter()
                .map(|vs| Owned {
                    vs: vs.clone(),
                    table: Table::new(vs.weight, LISTING_GRACE),
                    tasks: BTreeMap::new(),
                })
                .collect(),
        }
    }

    pub fn service_mut(&mut self, key: &ServiceKey) -> Option<&mut Owned> {
        self.services.iter_mut().find(|o| o.vs.service.key == *key)
    }

    /// The Marathon apps that feed the services.
    pub fn apps(&self) -> Vec<String> {
        let mut a: Vec<String> = self.services.iter().map(|o| o.vs.app.clone()).collect();
        a.sort();
        a.dedup();
        a
    }

    /// A full listing of `app`'s tasks (`GET /v2/apps/{id}/tasks`).
    pub fn listing(&mut self, app: &str, tasks: &[Task], now: Instant) {
        for o in self.services.iter_mut().filter(|o| o.vs.app == app) {
            let mut running = BTreeMap::new();
            o.tasks.clear();
            for t in tasks.iter().filter(|t| t.running()) {
                let (Some(ip), Some(&port)) = (t.ipv4(), t.ports.get(o.vs.port_index)) else {
                    continue;
                };
                let healthy = t.healthy();
                running.insert(ip, (port, healthy));
                o.tasks.insert(t.id.clone(), Known { ip, port, healthy });
            }
            o.table.listing(&running, now);
        }
    }

    /// One Marathon event.
    pub fn event(&mut self, e: &Event) {
        for o in self.services.iter_mut() {
            match e {
                Event::StatusUpdate(s) if s.app_id == o.vs.app => {
                    let ip = s
                        .ip_addresses
                        .iter()
                        .map(|a| a.ip_address)
                        .find(IpAddr::is_ipv4)
                        .or_else(|| o.tasks.get(&s.task_id).map(|k| k.ip));
                    let Some(ip) = ip else { continue };
                    if s.task_status == "TASK_RUNNING" {
                        let Some(&port) = s.ports.get(o.vs.port_index) else {
                            continue;
                        };
                        let healthy = o.tasks.get(&s.task_id).and_then(|k| k.healthy);
                        o.tasks
                            .insert(s.task_id.clone(), Known { ip, port, healthy });
                        o.table.seen(ip, Seen::Running { port, healthy });
                    } else {
                        o.tasks.remove(&s.task_id);
                        o.table.seen(ip, Seen::Gone);
                    }
                }
                Event::HealthChanged(h) if h.app_id == o.vs.app => {
                    for (_, k) in o.tasks.iter_mut().filter(|(id, _)| h.is_about(id)) {
                        k.healthy = Some(h.alive);
                        o.table.seen(
                            k.ip,
                            Seen::Running {
                                port: k.port,
                                healthy: k.healthy,
                            },
                        );
                    }
                }
                Event::UnhealthyTaskKill(t) if t.app_id == o.vs.app => {
                    let gone: Vec<String> = o
                        .tasks
                        .keys()
                        .filter(|id| t.is_about(id))
                        .cloned()
                        .collect();
                    for id in gone {
                        if let Some(k) = o.tasks.remove(&id) {
                            o.table.seen(k.ip, Seen::Gone);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The wanted IPVS state of every owned service.
    pub fn wanted(&self) -> BTreeMap<ServiceKey, Wanted> {
        wanted::wanted(self.services.iter().map(|o| (&o.vs, &o.table)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marathon::types;
    use berth_netcfg::ipvs::{FwdMethod, Service};

    fn director() -> Director {
        let key: ServiceKey = "10.0.0.100:80/tcp".parse().unwrap();
        Director::new(&[VirtualService {
            service: Service::new(key, "wrr"),
            forward: FwdMethod::Masq,
            app: "/shop/web".into(),
            port_index: 0,
            weight: 1,
        }])
    }

    fn dests(d: &Director) -> Vec<(String, u16, u32)> {
        d.wanted()
            .values()
            .flat_map(|w| w.dests.values())
            .map(|d| (d.key.addr.to_string(), d.key.port, d.weight))
            .collect()
    }

    fn tasks(json: &str) -> Vec<Task> {
        types::tasks(json.as_bytes()).unwrap()
    }

    fn task(id: &str, ip: &str, state: &str, alive: Option<bool>) -> String {
        let hc = alive.map_or(String::new(), |a| {
            format!(",\"healthCheckResults\":[{{\"alive\":{a}}}]")
        });
        format!(
            r#"{{"appId":"/shop/web","id":"{id}","ipAddresses":[{{"ipAddress":"{ip}","protocol":"IPv4"}}],"ports":[8080],"state":"{state}"{hc}}}"#
        )
    }

    #[test]
    fn a_listing_adds_running_healthy_tasks_and_drops_the_rest() {
        let mut d = director();
        let now = Instant::now();
        let list = format!(
            "{{\"tasks\":[{},{},{},{}]}}",
            task("a.1", "10.1.0.1", "TASK_RUNNING", Some(true)),
            task("a.2", "10.1.0.2", "TASK_RUNNING", Some(false)),
            task("a.3", "10.1.0.3", "TASK_STAGING", None),
            task("a.4", "10.1.0.4", "TASK_RUNNING", None),
        );
        d.listing("/shop/web", &tasks(&list), now);
        assert_eq!(
            dests(&d),
            [("10.1.0.1".into(), 8080, 1), ("10.1.0.4".into(), 8080, 1)]
        );
        // Another app's listing changes nothing here.
        d.listing("/other", &[], now);
        assert_eq!(dests(&d).len(), 2);
        // A registered one whose init died by SIGKILL: the next listing lacks it.
        let reg = "10.1.0.1".parse().unwrap();
        d.service_mut(&"10.0.0.100:80/tcp".parse().unwrap())
            .unwrap()
            .table
            .register(reg, 8080, 5, now - Duration::from_secs(60));
        d.listing(
            "/shop/web",
            &tasks(&format!(
                "{{\"tasks\":[{}]}}",
                task("a.4", "10.1.0.4", "TASK_RUNNING", None)
            )),
            now,
        );
        assert_eq!(dests(&d), [("10.1.0.4".into(), 8080, 1)]);
    }

    #[test]
    fn events_add_and_remove() {
        let mut d = director();
        let ev = |name: &str, data: &str| types::event(name, data).unwrap();
        d.event(&ev(
            "status_update_event",
            r#"{"appId":"/shop/web","taskId":"a.1","taskStatus":"TASK_RUNNING",
                "ipAddresses":[{"ipAddress":"10.1.0.1","protocol":"IPv4"}],"ports":[8080]}"#,
        ));
        assert_eq!(dests(&d), [("10.1.0.1".into(), 8080, 1)]);
        d.event(&ev(
            "health_status_changed_event",
            r#"{"appId":"/shop/web","instanceId":"a.1","alive":false}"#,
        ));
        assert!(dests(&d).is_empty(), "unhealthy leaves");
        d.event(&ev(
            "health_status_changed_event",
            r#"{"appId":"/shop/web","instanceId":"a.1","alive":true}"#,
        ));
        // A running update keeps the known health.
        d.event(&ev(
            "status_update_event",
            r#"{"appId":"/shop/web","taskId":"a.1","taskStatus":"TASK_RUNNING",
                "ipAddresses":[{"ipAddress":"10.1.0.1","protocol":"IPv4"}],"ports":[8080]}"#,
        ));
        assert_eq!(dests(&d).len(), 1);
        d.event(&ev(
            "unhealthy_task_kill_event",
            r#"{"appId":"/shop/web","taskId":"a.1","instanceId":"a.1"}"#,
        ));
        assert!(dests(&d).is_empty());
        // TASK_KILLED without IPs in the event: the known address is used.
        d.event(&ev(
            "status_update_event",
            r#"{"appId":"/shop/web","taskId":"a.2","taskStatus":"TASK_RUNNING",
                "ipAddresses":[{"ipAddress":"10.1.0.2","protocol":"IPv4"}],"ports":[8080]}"#,
        ));
        d.event(&ev(
            "status_update_event",
            r#"{"appId":"/shop/web","taskId":"a.2","taskStatus":"TASK_KILLED","ports":[]}"#,
        ));
        assert!(dests(&d).is_empty());
    }
}
