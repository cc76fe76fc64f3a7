//! State-machine tests with a scripted server and paused time (no root, no network).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::{Client, ClientConfig, Phase};
use super::io::{Configurator, Transport};
use super::lease::Lease;
use super::DhcpError;
use crate::names::IfName;

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 50);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Policy {
    Answer,
    Silent,
    /// NAK the next REQUEST, then answer again.
    NakOnce,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    kind: MessageType,
    dst: Ipv4Addr,
    ciaddr: Ipv4Addr,
    at: Duration,
}

struct Server {
    policy: Mutex<Policy>,
    sent: Mutex<Vec<Sent>>,
    queue: Mutex<VecDeque<Vec<u8>>>,
    notify: Notify,
    start: Instant,
}

#[derive(Clone)]
struct Wire(Arc<Server>);

impl Server {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            policy: Mutex::new(Policy::Answer),
            sent: Mutex::new(Vec::new()),
            queue: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            start: Instant::now(),
        })
    }
    fn set(&self, p: Policy) {
        *self.policy.lock().unwrap() = p;
    }
    fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }
    fn reply(req: &Message, mt: MessageType) -> Vec<u8> {
        let mut m = Message::new_with_id(
            req.xid(),
            Ipv4Addr::UNSPECIFIED,
            ADDR,
            SERVER,
            Ipv4Addr::UNSPECIFIED,
            &req.chaddr()[..6],
        );
        m.set_opcode(Opcode::BootReply);
        let o = m.opts_mut();
        o.insert(DhcpOption::MessageType(mt));
        o.insert(DhcpOption::ServerIdentifier(SERVER));
        o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
        o.insert(DhcpOption::AddressLeaseTime(120));
        o.insert(DhcpOption::Renewal(10));
        o.insert(DhcpOption::Rebinding(20));
        m.to_vec().unwrap()
    }
}

impl Transport for Wire {
    async fn send(&self, bytes: &[u8], dst: Ipv4Addr) -> Result<(), DhcpError> {
        let m = Message::from_bytes(bytes).unwrap();
        let kind = m.opts().msg_type().unwrap();
        let s = &self.0;
        s.sent.lock().unwrap().push(Sent {
            kind,
            dst,
            ciaddr: m.ciaddr(),
            at: s.start.elapsed(),
        });
        let mut policy = s.policy.lock().unwrap();
        let reply = match (kind, *policy) {
            (_, Policy::Silent) | (MessageType::Release, _) => None,
            (MessageType::Discover, _) => Some(Server::reply(&m, MessageType::Offer)),
            (MessageType::Request, Policy::NakOnce) => {
                *policy = Policy::Answer;
                Some(Server::reply(&m, MessageType::Nak))
            }
            (MessageType::Request, Policy::Answer) => Some(Server::reply(&m, MessageType::Ack)),
            _ => None,
        };
        if let Some(r) = reply {
            s.queue.lock().unwrap().push_back(r);
            s.notify.notify_one();
        }
        assert!(m.opts().get(OptionCode::ClientIdentifier).is_some());
        Ok(())
    }

    async fn recv(&self, deadline: Instant) -> Option<Vec<u8>> {
        loop {
            if let Some(b) = self.0.queue.lock().unwrap().pop_front() {
                return Some(b);
            }
            tokio::select! {
                _ = self.0.notify.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }
}

#[derive(Clone, Default)]
struct Conf(Arc<Mutex<Vec<String>>>);

impl Configurator for Conf {
    async fn apply(&self, lease: &Lease) -> Result<(), DhcpError> {
        self.0
            .lock()
            .unwrap()
            .push(format!("apply {}", lease.address));
        Ok(())
    }
    async fn deconfigure(&self) -> Result<(), DhcpError> {
        self.0.lock().unwrap().push("deconfigure".into());
        Ok(())
    }
}

fn client(server: &Arc<Server>, conf: &Conf) -> Client<Wire, Conf> {
    let cfg = ClientConfig::new(IfName::new("eth0").unwrap(), "app.1");
    Client::with_parts(cfg, [2, 0, 0, 0, 0, 1], Wire(server.clone()), conf.clone())
}

async fn keep_for(c: &mut Client<Wire, Conf>, secs: u64) {
    c.keep(tokio::time::sleep(Duration::from_secs(secs)))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn discover_select_then_unicast_renew_at_t1() {
    let s = Server::new();
    let conf = Conf::default();
    let mut c = client(&s, &conf);
    let l = c.acquire(Duration::from_secs(10)).await.unwrap();
    assert_eq!(l.address, ADDR);
    keep_for(&mut c, 15).await;
    let sent = s.sent();
    let kinds: Vec<_> = sent.iter().map(|m| (m.kind, m.dst)).collect();
    assert_eq!(
        kinds,
        vec![
            (MessageType::Discover, Ipv4Addr::BROADCAST),
            (MessageType::Request, Ipv4Addr::BROADCAST),
            (MessageType::Request, SERVER), // renew: unicast to the server identifier
        ]
    );
    assert_eq!(sent[2].ciaddr, ADDR);
    assert!(sent[2].at >= Duration::from_secs(10), "{sent:?}");
    assert_eq!(c.status().borrow().renewals, 1);
    assert_eq!(c.status().borrow().phase, Phase::Bound);
}

#[tokio::test(start_paused = true)]
async fn silent_server_renew_then_rebind_broadcast_then_expiry_and_restart() {
    let s = Server::new();
    let conf = Conf::default();
    let mut c = client(&s, &conf);
    c.acquire(Duration::from_secs(10)).await.unwrap();
    s.set(Policy::Silent);
    keep_for(&mut c, 25).await;
    let sent = s.sent();
    assert!(sent.iter().any(|m| m.kind == MessageType::Request
        && m.dst == SERVER
        && m.at >= Duration::from_secs(10)));
    let rebind = sent
        .iter()
        .find(|m| m.dst == Ipv4Addr::BROADCAST && m.ciaddr == ADDR)
        .expect("rebind");
    assert!(rebind.at >= Duration::from_secs(20), "{rebind:?}");
    assert_eq!(c.status().borrow().phase, Phase::Rebinding);
    assert_eq!(
        *conf.0.lock().unwrap(),
        vec![format!("apply {ADDR}")],
        "address kept until expiry"
    );

    keep_for(&mut c, 100).await; // past the 120 s lease
    assert!(conf.0.lock().unwrap().contains(&"deconfigure".to_string()));
    assert_eq!(c.lease(), None);
    let after: Vec<_> = s
        .sent()
        .into_iter()
        .filter(|m| m.at > Duration::from_secs(120))
        .collect();
    assert!(
        after.iter().any(|m| m.kind == MessageType::Discover),
        "starts over: {after:?}"
    );

    s.set(Policy::Answer);
    keep_for(&mut c, 20).await;
    assert_eq!(c.lease().map(|l| l.address), Some(ADDR));
    assert_eq!(c.status().borrow().phase, Phase::Bound);
}

#[tokio::test(start_paused = true)]
async fn nak_on_renew_deconfigures_and_starts_over() {
    let s = Server::new();
    let conf = Conf::default();
    let mut c = client(&s, &conf);
    c.acquire(Duration::from_secs(10)).await.unwrap();
    s.set(Policy::NakOnce);
    keep_for(&mut c, 12).await;
    let log = conf.0.lock().unwrap().clone();
    assert_eq!(
        log,
        vec![
            format!("apply {ADDR}"),
            "deconfigure".into(),
            format!("apply {ADDR}")
        ]
    );
    let discovers = s
        .sent()
        .iter()
        .filter(|m| m.kind == MessageType::Discover)
        .count();
    assert_eq!(discovers, 2);
}

#[tokio::test(start_paused = true)]
async fn release_is_unicast_and_deconfigures() {
    let s = Server::new();
    let conf = Conf::default();
    let mut c = client(&s, &conf);
    c.acquire(Duration::from_secs(10)).await.unwrap();
    c.release().await.unwrap();
    let last = s.sent().last().cloned().unwrap();
    assert_eq!(
        (last.kind, last.dst, last.ciaddr),
        (MessageType::Release, SERVER, ADDR)
    );
    assert_eq!(conf.0.lock().unwrap().last().unwrap(), "deconfigure");
    assert_eq!(c.status().borrow().phase, Phase::Released);
    c.release().await.unwrap(); // idempotent
}

#[tokio::test(start_paused = true)]
async fn timeout_says_what_was_tried() {
    let s = Server::new();
    s.set(Policy::Silent);
    let mut c = client(&s, &Conf::default());
    let e = c.acquire(Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "no DHCP lease on eth0 within 5 s (sent DISCOVER)"
    );
}
