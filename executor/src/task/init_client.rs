//! Client of berth-init's status socket: `<run dir>/init.sock` on the host
//! (`/run/berth/init.sock` in the container). One line of JSON each way:
//! `{"cmd":"status"}` -> `{"ok":true,"state":"starting"|"running"|"stopping"|"failed",
//! "services":[...],"require":..,"network":..}`; and `{"cmd":"wait","state":S,
//! "timeout_ms":N}` -> the same answer once the state is no longer S ([`wait_change`]:
//! TASK_RUNNING without polling).

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("cannot talk to berth-init at {path}")]
    Io {
        path: String,
        #[source]
        err: std::io::Error,
    },
    #[error("berth-init did not answer within {0:?}")]
    Timeout(Duration),
    #[error("berth-init's answer is not valid: {0}")]
    Answer(String),
    #[error("berth-init does not know the wait request: {0}")]
    Unsupported(String),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub pid: Option<i64>,
    #[serde(default)]
    pub restarts: u64,
    #[serde(default)]
    pub healthy: Option<bool>,
}

/// The status answer. Unknown fields are ignored (init may say more than berth reads).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct InitStatus {
    pub ok: bool,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub network: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<String>,
}

impl InitStatus {
    /// The container's IPv4 address, if init reports one (`network.ip` or
    /// `network.address`, with or without a `/prefix`).
    pub fn ip(&self) -> Option<String> {
        let n = self.network.as_ref()?;
        let v = n.get("ip").or_else(|| n.get("address"))?.as_str()?;
        let ip = v.split('/').next()?;
        ip.parse::<std::net::Ipv4Addr>().ok().map(|a| a.to_string())
    }

    /// Every service healthy (or without a check): init's own health view.
    pub fn healthy(&self) -> bool {
        self.services.iter().all(|s| s.healthy != Some(false))
    }
}

/// Asks init for its status.
pub async fn status(socket: &Path, timeout: Duration) -> Result<InitStatus, InitError> {
    request(socket, "{\"cmd\":\"status\"}\n", timeout).await
}

/// Asks init for its status once its overall state is no longer `since` (or after
/// `hold`, the state unchanged). An init from before the `wait` request refuses it:
/// [`InitError::Unsupported`], and the caller falls back to [`status`].
pub async fn wait_change(
    socket: &Path,
    since: &str,
    hold: Duration,
) -> Result<InitStatus, InitError> {
    let line = format!(
        "{}\n",
        serde_json::json!({"cmd": "wait", "state": since, "timeout_ms": hold.as_millis() as u64})
    );
    match request(socket, &line, hold + Duration::from_secs(2)).await {
        Err(InitError::Answer(e)) if e.contains("bad request") => Err(InitError::Unsupported(e)),
        r => r,
    }
}

async fn request(socket: &Path, line: &str, timeout: Duration) -> Result<InitStatus, InitError> {
    let path = socket.display().to_string();
    let io = |err| InitError::Io {
        path: path.clone(),
        err,
    };
    let work = async {
        let mut s = UnixStream::connect(socket).await.map_err(io)?;
        s.write_all(line.as_bytes()).await.map_err(io)?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).await.map_err(io)?;
        let st: InitStatus =
            serde_json::from_str(line.trim()).map_err(|e| InitError::Answer(e.to_string()))?;
        if !st.ok {
            return Err(InitError::Answer(
                st.error.clone().unwrap_or_else(|| "ok:false".into()),
            ));
        }
        Ok(st)
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| InitError::Timeout(timeout))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    #[tokio::test]
    async fn one_line_each_way() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("init.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0; 100];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(br#"{"ok":true,"state":"running","services":[{"name":"web","state":"running","pid":7,"restarts":0,"healthy":true}],"require":[],"network":{"ip":"10.1.2.3/24"},"extra":1}"#).await.unwrap();
            s.write_all(b"\n").await.unwrap();
            String::from_utf8_lossy(&buf[..n]).to_string()
        });
        let st = status(&sock, Duration::from_secs(2)).await.unwrap();
        assert_eq!(st.state, "running");
        assert_eq!(st.services[0].name, "web");
        assert_eq!(st.ip().as_deref(), Some("10.1.2.3"));
        assert!(st.healthy());
        assert_eq!(server.await.unwrap(), "{\"cmd\":\"status\"}\n");
    }

    #[tokio::test]
    async fn wait_asks_for_a_change_and_an_old_init_is_told_apart() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("init.sock");
        let l = UnixListener::bind(&sock).unwrap();
        let server = tokio::spawn(async move {
            let mut seen = vec![];
            for answer in [
                r#"{"ok":true,"state":"running","services":[],"require":null,"network":null}"#,
                r#"{"ok":false,"error":"bad request (unknown variant `wait`)"}"#,
                r#"{"ok":false,"error":"init did not answer in time"}"#,
            ] {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = vec![0; 200];
                let n = s.read(&mut buf).await.unwrap();
                seen.push(String::from_utf8_lossy(&buf[..n]).to_string());
                s.write_all(answer.as_bytes()).await.unwrap();
                s.write_all(b"\n").await.unwrap();
            }
            seen
        });
        let hold = Duration::from_millis(1500);
        let st = wait_change(&sock, "starting", hold).await.unwrap();
        assert_eq!(st.state, "running");
        let e = wait_change(&sock, "starting", hold).await.unwrap_err();
        assert!(matches!(e, InitError::Unsupported(_)), "{e}");
        let e = wait_change(&sock, "starting", hold).await.unwrap_err();
        assert!(matches!(e, InitError::Answer(_)), "{e}");
        let seen = server.await.unwrap();
        let req: serde_json::Value = serde_json::from_str(seen[0].trim()).unwrap();
        assert_eq!(
            req,
            serde_json::json!({"cmd": "wait", "state": "starting", "timeout_ms": 1500})
        );
        assert!(seen[0].ends_with('\n'));
    }

    #[tokio::test]
    async fn missing_socket_is_an_error() {
        let err = status(Path::new("/nonexistent/init.sock"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/init.sock"));
    }
}
