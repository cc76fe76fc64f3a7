//! From the director's per-service tables to the wanted IPVS state of the services it
//! owns (the input of `berth_netcfg::ipvs::diff::sync`).

use std::collections::BTreeMap;

use berth_netcfg::ipvs::diff::Wanted;
use berth_netcfg::ipvs::{Dest, DestKey, ServiceKey};

use super::config::VirtualService;
use super::table::Table;

/// The wanted real servers of every owned service, with its forwarding method.
pub fn wanted<'a>(
    services: impl IntoIterator<Item = (&'a VirtualService, &'a Table)>,
) -> BTreeMap<ServiceKey, Wanted> {
    services
        .into_iter()
        .map(|(vs, table)| {
            let dests = table
                .wanted()
                .into_iter()
                .map(|(addr, (port, weight))| {
                    let key = DestKey { addr, port };
                    (key, Dest::new(key, vs.forward, weight))
                })
                .collect();
            (
                vs.service.key,
                Wanted {
                    service: vs.service.clone(),
                    dests,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use berth_netcfg::ipvs::{FwdMethod, Service};

    use super::*;

    #[test]
    fn tables_become_wanted_dests() {
        let key: ServiceKey = "10.0.0.100:80/tcp".parse().unwrap();
        let vs = VirtualService {
            service: Service::new(key, "wrr"),
            forward: FwdMethod::Route,
            app: "/a".into(),
            port_index: 0,
            weight: 1,
        };
        let mut t = Table::new(1, Duration::from_secs(30));
        let ip = "10.0.0.5".parse().unwrap();
        t.register(ip, 8080, 4, Instant::now());
        let w = wanted([(&vs, &t)]);
        let d = &w[&key].dests;
        assert_eq!(
            d.values().copied().collect::<Vec<_>>(),
            vec![Dest::new(
                DestKey {
                    addr: ip,
                    port: 8080
                },
                FwdMethod::Route,
                4
            )]
        );
        // An empty table still names the service: the director keeps it, with no servers.
        let w = wanted([(&vs, &Table::new(1, Duration::from_secs(30)))]);
        assert!(w[&key].dests.is_empty());
    }
}
