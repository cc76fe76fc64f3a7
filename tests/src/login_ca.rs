//! The CA side of the login tests, over HTTP inside a container's netns: the user CA's key
//! list at `GET /ca.pub` (a test can change it or take it down) and a host-CA signing
//! endpoint at `POST /sign` (`ssh-keygen -h`), as an operator's CA service would offer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use berth_http::server::{self, respond};
use berth_http::StatusCode;

use crate::lab::Ns;
use crate::login::{sh, Key};

/// What `/sign` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// A host certificate of the posted key.
    Host,
    /// A *user* certificate of the posted key (a confused endpoint).
    User,
    /// An HTML error page.
    Garbage,
}

/// The served state a test changes.
pub struct Served {
    /// The body of `/ca.pub`; `None`: 503.
    pub ca: Option<String>,
    /// How `/sign` behaves.
    pub signing: Signing,
    /// Requests to `/sign` so far.
    pub signed: usize,
}

/// The CA server, listening on 127.0.0.1 of `ns`; stopped on drop.
pub struct CaServer {
    /// Its address inside the netns.
    pub addr: SocketAddr,
    /// What it serves.
    pub state: Arc<Mutex<Served>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn sign(host_ca: &std::path::Path, public: &[u8], signing: Signing) -> Result<String, String> {
    let d = tempfile::tempdir().map_err(|e| e.to_string())?;
    let p = d.path().join("key.pub");
    std::fs::write(&p, public).map_err(|e| e.to_string())?;
    let mut c = Command::new("ssh-keygen");
    c.args(["-q", "-s"])
        .arg(host_ca)
        .args(["-I", "container", "-n", "127.0.0.1"]);
    if signing == Signing::Host {
        c.arg("-h");
    }
    let out = c.arg(&p).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    std::fs::read_to_string(d.path().join("key-cert.pub")).map_err(|e| e.to_string())
}

impl CaServer {
    /// Starts serving `ca` in `ns` (whose `lo` must be up); `host_ca` signs on `/sign`.
    pub fn start(ns: &Ns, ca: &str, host_ca: &Key) -> CaServer {
        let state = Arc::new(Mutex::new(Served {
            ca: Some(ca.to_string()),
            signing: Signing::Host,
            signed: 0,
        }));
        let ns_path = ns.path();
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let host_ca: PathBuf = host_ca.0.clone();
        let thread = std::thread::spawn(move || {
            // This thread alone enters the netns: the listener is made there.
            crate::lab::enter_netns(&ns_path);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                server::serve(
                    l,
                    None,
                    move |req, _peer| {
                        let st = st.clone();
                        let host_ca = host_ca.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            match path.as_str() {
                                "/ca.pub" => match st.lock().unwrap().ca.clone() {
                                    Some(t) => respond(StatusCode::OK, "text/plain", t),
                                    None => respond(
                                        StatusCode::SERVICE_UNAVAILABLE,
                                        "text/plain",
                                        "down",
                                    ),
                                },
                                "/sign" => {
                                    let body =
                                        server::read_body(req, 4096).await.unwrap_or_default();
                                    let signing = {
                                        let mut s = st.lock().unwrap();
                                        s.signed += 1;
                                        s.signing
                                    };
                                    if signing == Signing::Garbage {
                                        return respond(
                                            StatusCode::OK,
                                            "text/html",
                                            "<html>502 Bad Gateway</html>",
                                        );
                                    }
                                    match sign(&host_ca, &body, signing) {
                                        Ok(cert) => respond(StatusCode::OK, "text/plain", cert),
                                        Err(e) => respond(StatusCode::BAD_REQUEST, "text/plain", e),
                                    }
                                }
                                _ => respond(StatusCode::NOT_FOUND, "text/plain", "no such path"),
                            }
                        }
                    },
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
            });
        });
        let addr = rx.recv().unwrap();
        CaServer {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for CaServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A known_hosts line trusting `host_ca` for 127.0.0.1 (no host key pinned).
pub fn cert_authority_line(host_ca: &Key) -> String {
    format!("@cert-authority 127.0.0.1 {}", host_ca.public())
}

/// `ssh-keygen -L` of a certificate file.
pub fn describe(cert: &std::path::Path) -> String {
    String::from_utf8_lossy(&sh(Command::new("ssh-keygen").arg("-L").arg("-f").arg(cert)).stdout)
        .into_owned()
}
