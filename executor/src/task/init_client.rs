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
    #[error("{path} is not a socket made by berth-init (a symlink or another file type): refusing to connect")]
    NotASocket { path: String },
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
        let mut s = connect_no_follow(socket).await.map_err(|e| match e {
            Connect::NotASocket => InitError::NotASocket { path: path.clone() },
            Connect::Io(err) => io(err),
        })?;
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

enum Connect {
    NotASocket,
    Io(std::io::Error),
}

/// Connects to the socket at `socket` without following a symlink in its last
/// component. The run dir is writable from inside the container (`/run/berth`), so a
/// task could replace `init.sock` with a symlink to any host socket and the (root)
/// executor would connect to it: the path is opened `O_PATH|O_NOFOLLOW`, checked to be
/// a socket, and connected through `/proc/self/fd/N` (that very inode).
async fn connect_no_follow(socket: &Path) -> Result<UnixStream, Connect> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::{fstat, Mode, SFlag};
    let fd = nix::fcntl::open(
        socket,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Connect::Io(e.into()))?;
    // SAFETY: `open` just returned this descriptor; the OwnedFd is its only owner.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let st = fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|e| Connect::Io(e.into()))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFSOCK {
        return Err(Connect::NotASocket);
    }
    let via = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    let s = UnixStream::connect(&via).await.map_err(Connect::Io)?;
    drop(fd);
    Ok(s)
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

    /// A task replacing `init.sock` with a symlink to a host socket: no connection is
    /// made to that socket, and a regular file is refused too.
    #[tokio::test]
    async fn a_symlink_or_a_file_is_never_connected_to() {
        let d = tempfile::tempdir().unwrap();
        let host = d.path().join("host.sock");
        let l = std::os::unix::net::UnixListener::bind(&host).unwrap();
        l.set_nonblocking(true).unwrap();
        let sock = d.path().join("init.sock");
        std::os::unix::fs::symlink(&host, &sock).unwrap();
        let e = status(&sock, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, InitError::NotASocket { .. }), "{e}");
        assert_eq!(
            l.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "the host socket got a connection"
        );
        std::fs::remove_file(&sock).unwrap();
        std::fs::write(&sock, b"x").unwrap();
        let e = status(&sock, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, InitError::NotASocket { .. }), "{e}");
        assert!(l.accept().is_err());
    }

    #[tokio::test]
    async fn missing_socket_is_an_error() {
        let err = status(Path::new("/nonexistent/init.sock"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/init.sock"));
    }
}
