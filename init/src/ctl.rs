//! `berth-init ctl`: one request to the status socket, the answer printed as is.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::status::Request;

/// Talking to the socket failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot talk to berth-init at {path}")]
pub struct CtlError {
    /// The socket.
    pub path: String,
    /// Why.
    #[source]
    pub err: std::io::Error,
}

/// Sends `req`, returns the answer line and whether it says `"ok":true`.
pub fn call(socket: &Path, req: &Request) -> Result<(String, bool), CtlError> {
    let err = |err| CtlError {
        path: socket.display().to_string(),
        err,
    };
    let mut s = UnixStream::connect(socket).map_err(err)?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(err)?;
    let mut line = serde_json::to_string(req).unwrap_or_default();
    line.push('\n');
    s.write_all(line.as_bytes()).map_err(err)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).map_err(err)?;
    let answer = answer.trim().to_string();
    let ok = serde_json::from_str::<serde_json::Value>(&answer)
        .ok()
        .and_then(|v| v.get("ok").and_then(|o| o.as_bool()))
        .unwrap_or(false);
    Ok((answer, ok))
}
