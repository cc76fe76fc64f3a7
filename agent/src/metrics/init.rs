//! berth-init's status socket, as the agent reads it: one `{"cmd":"status"}` line out,
//! one JSON line back (init/src/status.rs is the contract). Only the fields the agent
//! exports are parsed; anything else init adds is ignored.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The app's overall state and its services.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InitStatus {
    pub state: String,
    #[serde(default)]
    pub services: Vec<Service>,
    /// App metrics, when the app spec has a `statsd:` section.
    #[serde(default)]
    pub statsd: Option<super::app::Statsd>,
}

/// One service's line.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Service {
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub restarts: u64,
    /// `None` without a health check or before its first counted result.
    pub healthy: Option<bool>,
    /// How long the last health check took (microseconds); `None` before the first one.
    #[serde(default)]
    pub check_latency_us: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot ask berth-init's status socket {path}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("berth-init's status socket {path} answered {answer:?}")]
    Answer { path: PathBuf, answer: String },
}

/// Longest an answer may take (init answers `status` at once).
const TIMEOUT: Duration = Duration::from_secs(2);

/// Asks the socket at `path` for the status (blocking, at most [`TIMEOUT`] each way).
pub fn status(path: &Path) -> Result<InitStatus, InitError> {
    let io = |err| InitError::Io {
        path: path.to_owned(),
        err,
    };
    let mut s = UnixStream::connect(path).map_err(io)?;
    s.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    s.write_all(b"{\"cmd\":\"status\"}\n").map_err(io)?;
    let mut line = String::new();
    BufReader::new(std::io::Read::take(s, MAX_ANSWER))
        .read_line(&mut line)
        .map_err(io)?;
    parse(path, &line)
}

/// Parses one answer line.
pub fn parse(path: &Path, line: &str) -> Result<InitStatus, InitError> {
    #[derive(Deserialize)]
    struct Answer {
        ok: bool,
    }
    let bad = || InitError::Answer {
        path: path.to_owned(),
        answer: line.trim().chars().take(200).collect(),
    };
    match serde_json::from_str::<Answer>(line) {
        Ok(Answer { ok: true }) => serde_json::from_str(line).map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// A status line is small: never read more than this from a socket.
const MAX_ANSWER: u64 = 1 << 20;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_answer_parses_and_an_error_answer_is_refused() {
        let p = Path::new("/run/berth/x/init.sock");
        let line = r#"{"ok":true,"state":"running","services":[{"name":"web","state":"running","pid":7,"restarts":2,"healthy":true},{"name":"cron","state":"backoff","pid":null,"restarts":0,"healthy":null}],"require":null,"network":null}"#;
        let s = parse(p, line).unwrap();
        assert_eq!(s.state, "running");
        assert_eq!(s.services.len(), 2);
        assert_eq!(
            (s.services[0].restarts, s.services[0].healthy),
            (2, Some(true))
        );
        assert_eq!(s.services[1].healthy, None);
        let e = parse(p, r#"{"ok":false,"error":"busy"}"#).unwrap_err();
        assert!(e.to_string().contains("busy"), "{e}");
    }

    #[test]
    fn a_live_socket_is_asked_once() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("init.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let th = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = String::new();
            BufReader::new(c.try_clone().unwrap())
                .read_line(&mut req)
                .unwrap();
            c.write_all(b"{\"ok\":true,\"state\":\"starting\",\"services\":[]}\n")
                .unwrap();
            req
        });
        let s = status(&path).unwrap();
        assert_eq!(s.state, "starting");
        assert_eq!(th.join().unwrap(), "{\"cmd\":\"status\"}\n");
    }
}
