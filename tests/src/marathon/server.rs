//! The double's HTTP side (berth-http's server): the routes the real Marathon answers,
//! with its refusals: 401 without the configured credentials, 404 for an unknown app or
//! path, 405 for another method, 406 for `/v2/events` without `Accept: text/event-stream`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use berth_http::server::{self, Body};
use berth_http::{header, Incoming, Method, Request, Response, StatusCode};
use serde_json::json;

use super::state::{Seen, State, Stream};

pub type Shared = Arc<Mutex<State>>;

fn message(status: StatusCode, msg: &str) -> Response<Body> {
    server::json(status, &json!({ "message": msg }))
}

pub async fn handle(shared: Shared, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let resp = route(&shared, &req);
    let mut st = shared.lock().unwrap();
    st.requests.push(Seen {
        method: method.to_string(),
        path,
        status: resp.status().as_u16(),
    });
    resp
}

fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let mut st = shared.lock().unwrap();
    if let Some(want) = &st.auth {
        let got = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            let mut r = message(StatusCode::UNAUTHORIZED, "Unauthorized");
            if let Ok(v) = "Basic realm=\"Mesosphere Marathon\"".parse() {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            return r;
        }
    }
    let path = req.uri().path();
    if path == "/v2/events" {
        if req.method() != Method::GET {
            return message(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            );
        }
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !accept.contains("text/event-stream") {
            return message(StatusCode::NOT_ACCEPTABLE, "HTTP 406 Not Acceptable");
        }
        let types: BTreeSet<String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.strip_prefix("event_type="))
            .map(str::to_string)
            .collect();
        let (tx, body) = server::channel(1024);
        st.streams.push(Stream {
            types: (!types.is_empty()).then_some(types),
            tx,
        });
        let mut r = Response::new(body);
        if let Ok(v) = "text/event-stream".parse() {
            r.headers_mut().insert(header::CONTENT_TYPE, v);
        }
        return r;
    }
    if let Some(id) = path
        .strip_prefix("/v2/apps/")
        .and_then(|p| p.strip_suffix("/tasks"))
    {
        if req.method() != Method::GET {
            return message(
                StatusCode::METHOD_NOT_ALLOWED,
                "HTTP 405 Method Not Allowed",
            );
        }
        let app = format!("/{}", id.trim_matches('/'));
        return match st.apps.get(&app) {
            None => message(
                StatusCode::NOT_FOUND,
                &format!("App '{app}' does not exist"),
            ),
            Some(tasks) => {
                let tasks: Vec<_> = tasks.values().map(|t| t.json()).collect();
                server::json(StatusCode::OK, &json!({ "tasks": tasks }))
            }
        };
    }
    message(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}
