//! A strict Open-Falcon agent double: `POST /v1/push` with a JSON array of items,
//! checked with the rules Falcon's transfer applies before it counts an item valid
//! (REFERENCE.md section 3): non-empty `endpoint` and `metric`, `step` > 0, an integer
//! `timestamp`, a number `value`, `counterType` GAUGE or COUNTER (transfer also takes
//! DERIVE), `tags` empty or `k=v` pairs split by commas, and `len(metric) + len(tags)`
//! at most 510. Like the real agent it answers 200 `success` to any well-formed push
//! (invalid items are recorded, not refused); a body that is not a JSON array is a 400.
//! Built on berth-http's server, on its own thread and runtime.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_http::server::respond;
use berth_http::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, Default)]
pub struct Received {
    /// Valid items, in arrival order.
    pub items: Vec<Value>,
    /// Why each invalid item (or push) was refused.
    pub invalid: Vec<String>,
    pub pushes: usize,
}

pub struct FalconDouble {
    pub addr: SocketAddr,
    got: Arc<Mutex<Received>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Why `item` is invalid for transfer, or `None`.
pub fn invalid(item: &Value) -> Option<String> {
    let s = |k: &str| item[k].as_str();
    let endpoint = s("endpoint").filter(|e| !e.is_empty());
    let metric = s("metric").filter(|m| !m.is_empty());
    let (Some(_), Some(metric)) = (endpoint, metric) else {
        return Some(format!("empty endpoint or metric: {item}"));
    };
    if item["step"].as_i64().is_none_or(|st| st <= 0) {
        return Some(format!("step not a positive integer: {item}"));
    }
    if item["timestamp"].as_i64().is_none() {
        return Some(format!("timestamp not an integer: {item}"));
    }
    if !item["value"].is_number() {
        return Some(format!("value not a number: {item}"));
    }
    if !matches!(s("counterType"), Some("GAUGE" | "COUNTER" | "DERIVE")) {
        return Some(format!("bad counterType: {item}"));
    }
    let Some(tags) = s("tags") else {
        return Some(format!("tags not a string: {item}"));
    };
    if !tags.is_empty()
        && !tags.split(',').all(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty() && !v.contains('='))
        })
    {
        return Some(format!("tags not k=v,k=v: {item}"));
    }
    if metric.len() + tags.len() > 510 {
        return Some(format!("metric and tags longer than 510: {item}"));
    }
    None
}

impl FalconDouble {
    pub fn start() -> FalconDouble {
        let got = Arc::new(Mutex::new(Received::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let g = got.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx.send(l.local_addr().expect("addr")).expect("send");
                let handler = move |req: hyper::Request<hyper::body::Incoming>, _| {
                    let g = g.clone();
                    async move {
                        if req.method() != Method::POST || req.uri().path() != "/v1/push" {
                            return respond(
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "404 page not found\n",
                            );
                        }
                        let body = berth_http::server::read_body(req, 64 << 20).await;
                        let parsed = body
                            .ok()
                            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                        let mut r = g.lock().expect("lock");
                        r.pushes += 1;
                        let Some(Value::Array(items)) = parsed else {
                            r.invalid.push("the body is not a JSON array".into());
                            return respond(StatusCode::BAD_REQUEST, "text/plain", "bad body\n");
                        };
                        for it in items {
                            match invalid(&it) {
                                Some(why) => r.invalid.push(why),
                                None => r.items.push(it),
                            }
                        }
                        respond(StatusCode::OK, "text/plain", "success")
                    }
                };
                berth_http::server::serve(l, None, handler, async {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let addr = addr_rx.recv().expect("the double's address");
        FalconDouble {
            addr,
            got,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/push", self.addr)
    }

    /// Runs `f` on what was received.
    pub fn with<R>(&self, f: impl FnOnce(&Received) -> R) -> R {
        f(&self.got.lock().expect("lock"))
    }

    /// Waits up to `timeout` for `pred` to hold.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&Received) -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if self.with(&pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.with(&pred)
    }
}

impl Drop for FalconDouble {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transfer_rules() {
        let ok = json!({"endpoint": "web", "metric": "cpu.busy", "timestamp": 1, "step": 60,
            "value": 1.5, "counterType": "GAUGE", "tags": "app=/a,task=t"});
        assert_eq!(invalid(&ok), None);
        for (k, v) in [
            ("endpoint", json!("")),
            ("metric", json!("")),
            ("step", json!(0)),
            ("timestamp", json!("1")),
            ("value", json!("x")),
            ("counterType", json!("RATE")),
            ("tags", json!("app")),
            ("tags", json!("a=b=c")),
            ("tags", json!("x".repeat(510))),
        ] {
            let mut bad = ok.clone();
            bad[k] = v;
            assert!(invalid(&bad).is_some(), "{bad}");
        }
    }
}
