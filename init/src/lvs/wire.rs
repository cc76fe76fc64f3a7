//! The director API's bodies (HTTP JSON):
//! `PUT /v1/real-servers` `{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":1,"ip":"10.1.2.3"}`
//! registers or sets the weight; `DELETE /v1/real-servers` (same without `weight`)
//! deregisters (200 also when absent). Both answer 200 with the real server and
//! `"changed"`; errors are `{"error":"one line"}`.

use std::net::IpAddr;

use berth_netcfg::ipvs::ServiceKey;
use serde::{Deserialize, Serialize};

/// The path of both calls.
pub const PATH: &str = "/v1/real-servers";

/// `"10.0.0.100:80"` / `"[fd00::1]:80"` of a virtual service.
pub fn vip_text(k: &ServiceKey) -> String {
    match k.addr {
        IpAddr::V4(a) => format!("{a}:{}", k.port),
        IpAddr::V6(a) => format!("[{a}]:{}", k.port),
    }
}

/// The body of `PUT /v1/real-servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Put {
    pub vip: String,
    pub proto: String,
    pub port: u16,
    pub weight: u32,
    /// The container's address; the director checks it against the TCP peer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// The body of `DELETE /v1/real-servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delete {
    pub vip: String,
    pub proto: String,
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

/// A 200 answer (fields beyond `changed` are not needed here).
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    pub changed: bool,
}

/// An error answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_contract() {
        let k: ServiceKey = "10.0.0.100:80/tcp".parse().unwrap();
        let put = Put {
            vip: vip_text(&k),
            proto: k.protocol.to_string(),
            port: 8080,
            weight: 1,
            ip: Some("10.1.2.3".into()),
        };
        assert_eq!(
            serde_json::to_string(&put).unwrap(),
            r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080,"weight":1,"ip":"10.1.2.3"}"#
        );
        let del = Delete {
            vip: vip_text(&k),
            proto: "tcp".into(),
            port: 8080,
            ip: None,
        };
        assert_eq!(
            serde_json::to_string(&del).unwrap(),
            r#"{"vip":"10.0.0.100:80","proto":"tcp","port":8080}"#
        );
        let v6: ServiceKey = "[fd00::1]:443/tcp".parse().unwrap();
        assert_eq!(vip_text(&v6), "[fd00::1]:443");
    }
}
