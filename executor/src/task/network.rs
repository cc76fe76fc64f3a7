//! The network step: the task's own netns with a macvlan `eth0` on the configured parent
//! (optionally on a VLAN sub-interface) and tc limits in both directions, made by
//! `berth_netcfg::setup` and undone by `berth_netcfg::setup::teardown` (idempotent).
//!
//! The executor's settings ([`NetConfig`]) say whether networking is configured at all;
//! the task's labels and resources choose the VLAN and the rates, validated before
//! anything is made ([`from_task`]). Without a configured parent there is no network step
//! and the container gets a new netns with only loopback (see `bundle`).

use berth_netcfg::names::IfName;
use berth_netcfg::setup::{self, Dirs, NetSpec};
use berth_netcfg::tc::tbf::Tbf;
use berth_netcfg::tc::units::Rate;

use crate::mesos::types::TaskInfo;

use super::plan::PlanError;
use super::steps::{Step, StepCtx, StepError};

pub use super::config::net::{NetConfig, NetConfigError};

/// The interface berth-init configures by DHCP inside the container.
pub const CONTAINER_IFACE: &str = "eth0";

/// Labels of the network step.
pub const LABEL_VLAN: &str = "berth.vlan";
pub const LABEL_BANDWIDTH: &str = "berth.bandwidth";
pub const LABEL_EGRESS: &str = "berth.egress";
pub const LABEL_INGRESS: &str = "berth.ingress";

/// MTU used to check rates before the macvlan (and its real MTU) exists; the step checks
/// again with the real MTU.
const CHECK_MTU: u32 = 1500;

fn label_err(key: &str, why: impl Into<String>) -> PlanError {
    PlanError::Label {
        key: key.into(),
        why: why.into(),
    }
}

/// A rate from a label, checked the way the step will use it.
fn rate(key: &str, v: &str) -> Result<Rate, PlanError> {
    let r: Rate = v
        .trim()
        .parse()
        .map_err(|e| label_err(key, format!("{v:?}: {e}")))?;
    Tbf::new(r, None, CHECK_MTU).map_err(|e| label_err(key, format!("{v:?}: {e}")))?;
    Ok(r)
}

/// The task's network, or `None` when the executor has no network configured. Errors
/// name the field (`labels.berth.egress: ...`).
pub fn from_task(
    task: &TaskInfo,
    cfg: Option<&NetConfig>,
    bandwidth_mbit: f64,
) -> Result<Option<Network>, PlanError> {
    let labels = task.labels.clone().unwrap_or_default();
    let Some(cfg) = cfg else {
        for key in [LABEL_VLAN, LABEL_BANDWIDTH, LABEL_EGRESS, LABEL_INGRESS] {
            if labels.get(key).is_some() {
                return Err(label_err(
                    key,
                    "networking is not configured on this executor (BERTH_EXECUTOR_NET_PARENT)",
                ));
            }
        }
        return Ok(None);
    };
    let (parent, mode) = cfg.checked().map_err(|e| match e {
        NetConfigError::Parent(v, why) => PlanError::Config {
            setting: "BERTH_EXECUTOR_NET_PARENT".into(),
            why: format!("{v:?}: {why}"),
        },
        NetConfigError::Mode(v, why) => PlanError::Config {
            setting: "BERTH_EXECUTOR_NET_MODE".into(),
            why: format!("{v:?}: {why}"),
        },
    })?;
    let mut spec = NetSpec::new(&task.task_id.value, parent);
    spec.mode = mode;
    if let Some(v) = labels.get(LABEL_VLAN) {
        let vid: u16 = v
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=4094).contains(n))
            .ok_or_else(|| label_err(LABEL_VLAN, format!("{v:?} is not a VLAN id (1-4094)")))?;
        spec.vlan = Some(vid);
    }
    // The `bandwidth` resource (Mbit/s) limits both directions; labels override it.
    let mut both = None;
    if bandwidth_mbit > 0.0 {
        let r = Rate::from_bits((bandwidth_mbit * 1_000_000.0) as u64);
        Tbf::new(r, None, CHECK_MTU).map_err(|e| PlanError::Resource {
            name: "bandwidth".into(),
            why: format!("{bandwidth_mbit} Mbit/s: {e}"),
        })?;
        both = Some(r);
    }
    if let Some(v) = labels.get(LABEL_BANDWIDTH) {
        both = Some(rate(LABEL_BANDWIDTH, v)?);
    }
    spec.egress = match labels.get(LABEL_EGRESS) {
        Some(v) => Some(rate(LABEL_EGRESS, v)?),
        None => both,
    };
    spec.ingress = match labels.get(LABEL_INGRESS) {
        Some(v) => Some(rate(LABEL_INGRESS, v)?),
        None => both,
    };
    Ok(Some(Network { spec }))
}

/// The preparation step `network`.
#[derive(Debug, Clone)]
pub struct Network {
    pub spec: NetSpec,
}

/// Runs a netcfg future on its own thread with a current-thread runtime (steps run on
/// tokio's blocking pool; netcfg needs a runtime for its netlink connection).
fn on_runtime<T: Send + 'static>(
    f: impl FnOnce(tokio::runtime::Runtime) -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("tokio runtime: {e}"))?;
        f(rt)
    })
    .join()
    .unwrap_or_else(|_| Err("the netcfg thread panicked".into()))
}

impl Step for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn run(&self, ctx: &StepCtx) -> Result<(), StepError> {
        let spec = self.spec.clone();
        let info = on_runtime(move |rt| {
            rt.block_on(async move {
                let host = berth_netcfg::conn::connect()
                    .map_err(|e| format!("netlink connection: {e}"))?;
                setup::setup(&host, &Dirs::default(), &spec)
                    .await
                    .map_err(|e| error_chain(&e))
            })
        })
        .map_err(|m| StepError::new("network", m))?;
        tracing::info!(netns = %info.netns_path.display(), mtu = info.mtu, "network prepared");
        if let Ok(mut o) = ctx.outputs.lock() {
            o.netns = Some(info.netns_path);
        }
        Ok(())
    }

    fn undo(&self, _ctx: &StepCtx) -> Result<(), StepError> {
        let spec = self.spec.clone();
        on_runtime(move |rt| {
            rt.block_on(async move {
                let host = berth_netcfg::conn::connect()
                    .map_err(|e| format!("netlink connection: {e}"))?;
                setup::teardown(&host, &Dirs::default(), &spec)
                    .await
                    .map_err(|e| error_chain(&e))
            })
        })
        .map_err(|m| StepError::new("network", m))
    }
}

/// The IPv4 addresses on [`CONTAINER_IFACE`] in the netns pinned at `netns`, read by
/// netlink from a thread that joined that namespace (its netlink socket is made there).
pub fn container_addresses(netns: &std::path::Path) -> Result<Vec<std::net::Ipv4Addr>, String> {
    let ns = std::fs::File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
    on_runtime(move |rt| {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("join the task's netns: {e}"))?;
        rt.block_on(async move {
            let h =
                berth_netcfg::conn::connect().map_err(|e| format!("netlink connection: {e}"))?;
            let iface = IfName::new(CONTAINER_IFACE).map_err(|e| e.to_string())?;
            berth_netcfg::dhcp::apply::addresses(&h, &iface)
                .await
                .map(|v| v.into_iter().map(|(a, _)| a).collect())
                .map_err(|e| error_chain(&e))
        })
    })
}

/// The address init reported, if it is one of the addresses actually on the task's
/// interface (`on_eth0`); otherwise None. The report comes from the container, which
/// could say anything: only a verified address reaches TASK_RUNNING.
pub fn verified_ip(reported: Option<&str>, on_eth0: &[std::net::Ipv4Addr]) -> Option<String> {
    let ip: std::net::Ipv4Addr = reported?.parse().ok()?;
    on_eth0.contains(&ip).then(|| ip.to_string())
}

/// An error and its sources, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The netns of a unit test (`ip netns`), deleted on drop.
    struct TestNetns(String);
    impl Drop for TestNetns {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }

    /// The addresses are read in the task's netns: a real one (root) with a veth eth0.
    #[test]
    fn a_fake_address_is_not_on_eth0_in_the_tasks_netns() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(euid, 0, "this test makes a netns: run it as root");
        let ns = TestNetns(format!("berth-ut-ip-{}", std::process::id()));
        let ip = |args: &[&str]| {
            let st = std::process::Command::new("ip")
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &ns.0]);
        ip(&[
            "-n", &ns.0, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
        ]);
        ip(&["-n", &ns.0, "addr", "add", "10.77.0.5/24", "dev", "eth0"]);
        let on = container_addresses(&std::path::Path::new("/run/netns").join(&ns.0)).unwrap();
        assert_eq!(on, vec![std::net::Ipv4Addr::new(10, 77, 0, 5)]);
        assert_eq!(
            verified_ip(Some("10.77.0.5"), &on).as_deref(),
            Some("10.77.0.5")
        );
        assert_eq!(verified_ip(Some("10.77.0.6"), &on), None);
    }

    #[test]
    fn only_an_address_on_eth0_is_reported() {
        let on: Vec<std::net::Ipv4Addr> = vec!["10.1.2.3".parse().unwrap()];
        assert_eq!(
            verified_ip(Some("10.1.2.3"), &on).as_deref(),
            Some("10.1.2.3")
        );
        assert_eq!(verified_ip(Some("10.9.9.9"), &on), None, "a fake address");
        assert_eq!(verified_ip(Some("10.1.2.3"), &[]), None);
        assert_eq!(verified_ip(None, &on), None);
        assert_eq!(verified_ip(Some("nonsense"), &on), None);
    }

    fn task(labels: &[(&str, &str)]) -> TaskInfo {
        let labels: Vec<_> = labels
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
            .collect();
        serde_json::from_value(serde_json::json!({
            "name": "web", "task_id": {"value": "web.1"}, "resources": [],
            "labels": {"labels": labels}
        }))
        .unwrap()
    }

    fn cfg() -> NetConfig {
        NetConfig {
            parent: "nic0".into(),
            mode: "bridge".into(),
        }
    }

    #[test]
    fn not_configured_means_no_step_and_network_labels_are_refused() {
        assert!(from_task(&task(&[]), None, 100.0).unwrap().is_none());
        let e = from_task(&task(&[("berth.vlan", "7")]), None, 0.0).unwrap_err();
        assert!(e.to_string().starts_with("labels.berth.vlan"), "{e}");
    }

    #[test]
    fn labels_choose_vlan_and_rates() {
        let n = from_task(
            &task(&[
                ("berth.vlan", "42"),
                ("berth.bandwidth", "100mbit"),
                ("berth.ingress", "20mbit"),
            ]),
            Some(&cfg()),
            0.0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(n.spec.vlan, Some(42));
        assert_eq!(n.spec.egress, Some("100mbit".parse().unwrap()));
        assert_eq!(n.spec.ingress, Some("20mbit".parse().unwrap()));
        assert_eq!(n.spec.parent.to_string(), "nic0");
        assert_eq!(n.spec.task_id, "web.1");
        // The resource applies to both directions when no label says otherwise.
        let n = from_task(&task(&[]), Some(&cfg()), 10.0).unwrap().unwrap();
        assert_eq!(n.spec.egress, Some("10mbit".parse().unwrap()));
        assert_eq!(n.spec.ingress, n.spec.egress);
        let n = from_task(&task(&[]), Some(&cfg()), 0.0).unwrap().unwrap();
        assert_eq!((n.spec.egress, n.spec.vlan), (None, None));
    }

    #[test]
    fn bad_values_name_the_field() {
        for (k, v) in [
            ("berth.vlan", "0"),
            ("berth.vlan", "4095"),
            ("berth.vlan", "x"),
            ("berth.bandwidth", "fast"),
            ("berth.egress", "10kbit"),
            ("berth.ingress", "-1mbit"),
        ] {
            let e = from_task(&task(&[(k, v)]), Some(&cfg()), 0.0).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("labels.{k}: ")),
                "{k}={v}: {e}"
            );
        }
        let bad = NetConfig {
            parent: "nic0".into(),
            mode: "sideways".into(),
        };
        let e = from_task(&task(&[]), Some(&bad), 0.0).unwrap_err();
        assert!(e.to_string().contains("BERTH_EXECUTOR_NET_MODE"), "{e}");
        let bad = NetConfig {
            parent: "eth0/../x".into(),
            mode: "bridge".into(),
        };
        let e = from_task(&task(&[]), Some(&bad), 0.0).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("executor setting BERTH_EXECUTOR_NET_PARENT"),
            "{e}"
        );
    }
}
