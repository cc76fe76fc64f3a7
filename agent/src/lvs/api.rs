//! The real-server API berth-init calls, as a pure function of (method, path, body, TCP
//! peer address) over the [`Director`]; the HTTP server hands requests to [`handle`].
//!
//! - `PUT /v1/real-servers` `{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":1,
//!   "ip":"10.1.2.3"}`: register, or set the weight; 200 with `changed`.
//! - `DELETE /v1/real-servers` (same without weight): deregister; 200 also when absent.
//! - `GET /v1/services`: the table berth owns.
//!
//! The real server's IP is always the TCP peer address; an `ip` that differs is 403.
//! Unknown fields, a malformed VIP/proto/port, a weight outside 0..=65535: 400. A service
//! not in the config: 404. Errors are `{"error":"one line"}`.

use std::net::IpAddr;
use std::time::Instant;

use berth_http::{Method, StatusCode};
use berth_netcfg::ipvs::ServiceKey;
use serde::Deserialize;
use serde_json::{json, Value};

use super::director::Director;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    vip: String,
    proto: String,
    port: u16,
    weight: Option<i64>,
    ip: Option<IpAddr>,
}

fn error(status: StatusCode, msg: impl Into<String>) -> (StatusCode, Value) {
    let m: String = msg.into();
    (status, json!({ "error": m.lines().next().unwrap_or("") }))
}

/// Answers one request; `peer` is the connection's TCP peer address.
pub fn handle(
    d: &mut Director,
    method: &Method,
    path: &str,
    body: &[u8],
    peer: IpAddr,
    now: Instant,
) -> (StatusCode, Value) {
    let peer = canonical(peer);
    match (path, method) {
        ("/v1/services", &Method::GET) => (StatusCode::OK, services(d)),
        ("/v1/real-servers", m) if m == Method::PUT || m == Method::DELETE => {
            real_server(d, m == Method::PUT, body, peer, now)
        }
        ("/v1/services" | "/v1/real-servers", _) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, format!("no such path {path}")),
    }
}

/// `::ffff:10.1.2.3` (a dual-stack listener) is 10.1.2.3.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn real_server(
    d: &mut Director,
    put: bool,
    body: &[u8],
    peer: IpAddr,
    now: Instant,
) -> (StatusCode, Value) {
    let b: Body = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad body: {e}")),
    };
    if b.vip.contains('/') {
        return error(StatusCode::BAD_REQUEST, format!("bad vip {:?}", b.vip));
    }
    let key: ServiceKey = match format!("{}/{}", b.vip, b.proto).parse() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if b.port == 0 {
        return error(StatusCode::BAD_REQUEST, "port must be 1..=65535");
    }
    if !put && b.weight.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown field `weight` in a DELETE",
        );
    }
    let weight = match b.weight {
        Some(w) if !(0..=65535).contains(&w) => {
            return error(StatusCode::BAD_REQUEST, "weight must be 0..=65535")
        }
        Some(w) => Some(w as u32),
        None => None,
    };
    if let Some(ip) = b.ip {
        if canonical(ip) != peer {
            return error(
                StatusCode::FORBIDDEN,
                format!("{ip} is not the caller's address {peer}"),
            );
        }
    }
    let Some(o) = d.service_mut(&key) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{key} is not a service of this director"),
        );
    };
    let before = o.table.wanted();
    let mut out = json!({
        "vip": b.vip, "proto": key.protocol.to_string(), "ip": peer.to_string(), "port": b.port,
    });
    if put {
        let weight = weight.unwrap_or(o.vs.weight);
        let changed = o.table.register(peer, b.port, weight, now);
        out["weight"] = json!(weight);
        out["changed"] = json!(changed);
    } else {
        o.table.deregister(peer);
        out["changed"] = json!(before != o.table.wanted());
    }
    (StatusCode::OK, out)
}

fn services(d: &Director) -> Value {
    let list: Vec<Value> = d
        .services
        .iter()
        .map(|o| {
            let k = o.vs.service.key;
            let rs: Vec<Value> = o
                .table
                .wanted()
                .into_iter()
                .map(|(ip, (port, weight))| json!({"ip": ip.to_string(), "port": port, "weight": weight}))
                .collect();
            json!({
                "vip": std::net::SocketAddr::new(k.addr, k.port).to_string(),
                "proto": k.protocol.to_string(),
                "scheduler": o.vs.service.scheduler,
                "forward": format!("{:?}", o.vs.forward).to_lowercase(),
                "app": o.vs.app,
                "real_servers": rs,
            })
        })
        .collect();
    json!({ "services": list })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lvs::config::VirtualService;
    use berth_netcfg::ipvs::{FwdMethod, Service};

    fn director() -> Director {
        Director::new(&[VirtualService {
            service: Service::new("10.0.0.100:80/tcp".parse().unwrap(), "wrr"),
            forward: FwdMethod::Masq,
            app: "/shop/web".into(),
            port_index: 0,
            weight: 1,
        }])
    }

    const PEER: &str = "10.1.2.3";

    fn call(d: &mut Director, m: Method, body: &str) -> (u16, Value) {
        let (s, v) = handle(
            d,
            &m,
            "/v1/real-servers",
            body.as_bytes(),
            PEER.parse().unwrap(),
            Instant::now(),
        );
        (s.as_u16(), v)
    }

    #[test]
    fn register_is_idempotent_and_sets_the_weight() {
        let mut d = director();
        let b = r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":1,"ip":"10.1.2.3"}"#;
        let (s, v) = call(&mut d, Method::PUT, b);
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            v,
            json!({"vip":"10.0.0.100:80","proto":"tcp","ip":PEER,"port":8080,"weight":1,"changed":true})
        );
        assert_eq!(call(&mut d, Method::PUT, b).1["changed"], false);
        let (_, v) = call(
            &mut d,
            Method::PUT,
            &b.replace("\"weight\":1", "\"weight\":0"),
        );
        assert_eq!(
            (v["weight"].clone(), v["changed"].clone()),
            (json!(0), json!(true))
        );
        // No ip: the peer address is taken.
        let (s, v) = call(
            &mut d,
            Method::PUT,
            r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":3}"#,
        );
        assert_eq!((s, v["ip"].clone()), (200, json!(PEER)));
        let (s, v) = handle(
            &mut d,
            &Method::GET,
            "/v1/services",
            b"",
            PEER.parse().unwrap(),
            Instant::now(),
        );
        assert_eq!(s, 200);
        assert_eq!(
            v["services"][0]["real_servers"],
            json!([{"ip":PEER,"port":8080,"weight":3}])
        );

        let del = r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080}"#;
        assert_eq!(
            call(&mut d, Method::DELETE, del),
            (
                200,
                json!({"vip":"10.0.0.100:80","proto":"tcp","ip":PEER,"port":8080,"changed":true})
            )
        );
        let (s, v) = call(&mut d, Method::DELETE, del);
        assert_eq!((s, v["changed"].clone()), (200, json!(false)));
    }

    #[test]
    fn rejections() {
        let mut d = director();
        let cases = [
            (
                r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"ip":"10.1.2.4"}"#,
                403,
            ),
            (r#"{"vip":"10.0.0.100","proto":"tcp","port":8080}"#, 400),
            (
                r#"{"vip":"10.0.0.100:80/tcp","proto":"tcp","port":8080}"#,
                400,
            ),
            (r#"{"vip":"10.0.0.100:80","proto":"icmp","port":8080}"#, 400),
            (r#"{"vip":"10.0.0.100:80","proto":"tcp","port":70000}"#, 400),
            (r#"{"vip":"10.0.0.100:80","proto":"tcp","port":0}"#, 400),
            (
                r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":65536}"#,
                400,
            ),
            (
                r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":-1}"#,
                400,
            ),
            (
                r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"extra":1}"#,
                400,
            ),
            (r#"{"vip":"10.0.0.100:81","proto":"tcp","port":8080}"#, 404),
            (r#"{"vip":"10.0.0.100:80","proto":"udp","port":8080}"#, 404),
            ("not json", 400),
        ];
        for (body, want) in cases {
            let (s, v) = call(&mut d, Method::PUT, body);
            assert_eq!(s, want, "{body}: {v}");
            assert!(
                v["error"].as_str().is_some_and(|e| !e.contains('\n')),
                "{v}"
            );
        }
        assert_eq!(
            call(
                &mut d,
                Method::DELETE,
                r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":1}"#
            )
            .0,
            400
        );
        let (s, _) = handle(
            &mut d,
            &Method::POST,
            "/v1/real-servers",
            b"{}",
            PEER.parse().unwrap(),
            Instant::now(),
        );
        assert_eq!(s.as_u16(), 405);
        let (s, _) = handle(
            &mut d,
            &Method::GET,
            "/v2/x",
            b"",
            PEER.parse().unwrap(),
            Instant::now(),
        );
        assert_eq!(s.as_u16(), 404);
        assert!(
            d.wanted().values().all(|w| w.dests.is_empty()),
            "nothing rejected got in"
        );
        // A v4-mapped peer is the v4 address.
        let (s, _) = handle(
            &mut d,
            &Method::PUT,
            "/v1/real-servers",
            br#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"ip":"10.1.2.3"}"#,
            "::ffff:10.1.2.3".parse().unwrap(),
            Instant::now(),
        );
        assert_eq!(s.as_u16(), 200);
    }
}
