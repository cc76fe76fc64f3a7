//! A strict double of the LVS director's HTTP API (`berth-agent lvs`), for berth-init's
//! side: it rejects what the real one rejects and records every call with its time.
//!
//! - `PUT /v1/real-servers` `{"vip","proto","port","weight","ip"?}`: register or set
//!   the weight; `DELETE /v1/real-servers` `{"vip","proto","port","ip"?}`: deregister
//!   (200 also when absent); `GET /v1/services`: the table. 200 answers carry the real
//!   server and `"changed"`.
//! - 400 for a malformed body or an unknown field, 404 for a VIP it does not serve, 403
//!   when the body's `ip` is not the TCP peer's address, 405 for another method;
//!   errors are `{"error":"one line"}`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use berth_http::server;
use berth_http::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

/// One call as received.
#[derive(Debug, Clone)]
pub struct Call {
    /// When it arrived (wall clock, comparable with `date +%s%N` in a container).
    pub at: SystemTime,
    pub method: String,
    pub path: String,
    /// The body's weight (PUT).
    pub weight: Option<u32>,
    /// The body's ip, if it had one.
    pub ip: Option<String>,
    /// The TCP peer.
    pub peer: IpAddr,
    /// What the double answered.
    pub status: u16,
}

/// (vip, proto, ip, port) → weight.
type Table = BTreeMap<(String, String, String, u16), u32>;

#[derive(Default)]
struct State {
    vips: Vec<String>,
    table: Table,
    calls: Vec<Call>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body_ {
    vip: String,
    proto: String,
    port: u16,
    weight: Option<u32>,
    ip: Option<String>,
}

/// A running double; stops on drop.
pub struct Director {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn err(status: StatusCode, why: &str) -> (StatusCode, Value) {
    (status, json!({ "error": why }))
}

fn handle(
    st: &Mutex<State>,
    method: &Method,
    path: &str,
    body: &[u8],
    peer: IpAddr,
) -> (StatusCode, Value, Option<Body_>) {
    if path == "/v1/services" {
        if method != Method::GET {
            let (s, v) = err(StatusCode::METHOD_NOT_ALLOWED, "GET only");
            return (s, v, None);
        }
        let st = st.lock().unwrap();
        let rs: Vec<Value> = st
            .table
            .iter()
            .map(|((vip, proto, ip, port), w)| json!({"vip": vip, "proto": proto, "ip": ip, "port": port, "weight": w}))
            .collect();
        return (StatusCode::OK, json!({ "real_servers": rs }), None);
    }
    if path != "/v1/real-servers" {
        let (s, v) = err(StatusCode::NOT_FOUND, "no such path");
        return (s, v, None);
    }
    if method != Method::PUT && method != Method::DELETE {
        let (s, v) = err(StatusCode::METHOD_NOT_ALLOWED, "PUT or DELETE");
        return (s, v, None);
    }
    let b: Body_ = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => {
            let (s, v) = err(StatusCode::BAD_REQUEST, &format!("bad body: {e}"));
            return (s, v, None);
        }
    };
    let bad = |why: &str| {
        let (s, v) = err(StatusCode::BAD_REQUEST, why);
        (s, v)
    };
    let checked = if b.vip.parse::<SocketAddr>().is_err() {
        Err(bad("vip: expected ADDR:PORT"))
    } else if !["tcp", "udp", "sctp"].contains(&b.proto.as_str()) {
        Err(bad("proto: tcp, udp or sctp"))
    } else if b.port == 0 {
        Err(bad("port: 1-65535"))
    } else if method == Method::PUT && b.weight.is_none() {
        Err(bad("weight: missing"))
    } else if method == Method::DELETE && b.weight.is_some() {
        Err(bad("unknown field `weight`"))
    } else if b
        .ip
        .as_ref()
        .is_some_and(|ip| ip.parse::<IpAddr>().ok() != Some(peer))
    {
        Err(err(StatusCode::FORBIDDEN, "ip is not the caller's address"))
    } else {
        Ok(())
    };
    if let Err((s, v)) = checked {
        return (s, v, Some(b));
    }
    let mut st = st.lock().unwrap();
    if !st.vips.contains(&format!("{}/{}", b.vip, b.proto)) {
        let (s, v) = err(StatusCode::NOT_FOUND, "unknown virtual service");
        return (s, v, Some(b));
    }
    let key = (b.vip.clone(), b.proto.clone(), peer.to_string(), b.port);
    let changed = match b.weight {
        Some(w) => st.table.insert(key, w) != Some(w),
        None => st.table.remove(&key).is_some(),
    };
    let v = json!({"vip": b.vip, "proto": b.proto, "ip": peer.to_string(), "port": b.port, "weight": b.weight.unwrap_or(0), "changed": changed});
    (StatusCode::OK, v, Some(b))
}

impl Director {
    /// Serves `vips` (`10.0.0.100:80/tcp`) on 127.0.0.1:`port` (0: any free port).
    pub fn start(port: u16, vips: &[&str]) -> Director {
        let state = Arc::new(Mutex::new(State {
            vips: vips.iter().map(|v| v.to_string()).collect(),
            ..State::default()
        }));
        let std_l =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the director double");
        std_l.set_nonblocking(true).unwrap();
        let addr = std_l.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_l).unwrap();
                server::serve(
                    listener,
                    None,
                    move |req, peer: SocketAddr| {
                        let st = st.clone();
                        async move {
                            let method = req.method().clone();
                            let path = req.uri().path().to_string();
                            let body = server::read_body(req, 64 * 1024).await.unwrap_or_default();
                            let (status, value, b) = handle(&st, &method, &path, &body, peer.ip());
                            st.lock().unwrap().calls.push(Call {
                                at: SystemTime::now(),
                                method: method.to_string(),
                                path,
                                weight: b.as_ref().and_then(|b| b.weight),
                                ip: b.and_then(|b| b.ip),
                                peer: peer.ip(),
                                status: status.as_u16(),
                            });
                            server::json(status, &value)
                        }
                    },
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            });
        });
        Director {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    /// The table: (vip, proto, ip, port) → weight.
    pub fn table(&self) -> Vec<((String, String, String, u16), u32)> {
        self.state
            .lock()
            .unwrap()
            .table
            .clone()
            .into_iter()
            .collect()
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
