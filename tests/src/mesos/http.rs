//! The double's HTTP side, on berth-http's server (hyper): a request read into the
//! [`HttpRequest`] the checks take, plain-text answers, and the event stream's RecordIO
//! framing cut into HTTP chunks.

use berth_http::server::{self, Body};
use berth_http::{Bytes, StatusCode};
use hyper::body::Incoming;

use super::validate::HttpRequest;

const MAX_BODY: usize = 16 << 20;

/// Reads a whole request; `Err` with the answer when its body cannot be read.
pub async fn read_request(req: hyper::Request<Incoming>) -> Result<HttpRequest, (u16, String)> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let body = server::read_body(req, MAX_BODY)
        .await
        .map_err(|e| (400, e.to_string()))?;
    Ok(HttpRequest {
        method,
        path,
        headers,
        body: body.to_vec(),
    })
}

/// A complete response with a text body.
pub fn respond(status: u16, body: &str) -> hyper::Response<Body> {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    server::respond(status, "text/plain; charset=utf-8", body.to_string())
}

/// The 200 answer to SUBSCRIBE; its body is the event stream.
pub fn stream(body: Body) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(body);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// RecordIO records (`<length>\n<record>`), all of them in one HTTP chunk or split over
/// `pieces` chunks (to exercise the executor's decoder with chunk boundaries unrelated
/// to record boundaries: hyper writes each piece as a chunk of its own).
pub fn record_chunks(records: &[&[u8]], pieces: usize) -> Vec<Bytes> {
    let mut data = Vec::new();
    for record in records {
        data.extend_from_slice(format!("{}\n", record.len()).as_bytes());
        data.extend_from_slice(record);
    }
    let size = data.len().div_ceil(pieces.max(1)).max(1);
    data.chunks(size).map(Bytes::copy_from_slice).collect()
}
