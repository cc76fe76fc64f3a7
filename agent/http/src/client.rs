//! The client: one request per connection (berth's peers are few and its long-lived
//! requests are streams: the Mesos agent's SUBSCRIBE, Marathon's `/v2/events`), unless made
//! with [`Client::reusing`]: then a connection whose response was read to its end is kept
//! for the next request to the same peer (HTTP/1.1 keep-alive), and [`Client::warm`] opens
//! one ahead of the first request, so a call pays no TCP or TLS handshake.
//!
//! Each request gets a connect timeout, TCP keepalive (so a peer that vanishes is noticed
//! even on a silent stream), a timeout for the response head, and, when the body is read
//! whole, a bounded size and a deadline.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use crate::tls::{ClientTls, TlsError};
use crate::url::{Url, UrlError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("TLS settings")]
    Tls(#[from] TlsError),
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        err: std::io::Error,
    },
    #[error("cannot connect to {addr}: no answer within {after:?}")]
    ConnectTimeout { addr: String, after: Duration },
    #[error("TLS handshake with {addr} failed")]
    Handshake {
        addr: String,
        #[source]
        err: std::io::Error,
    },
    #[error("{host:?} is not a valid TLS server name")]
    ServerName { host: String },
    #[error("HTTP exchange with {addr} failed")]
    Http {
        addr: String,
        #[source]
        err: hyper::Error,
    },
    #[error("no answer from {url} within {after:?}")]
    Timeout { url: String, after: Duration },
    #[error("the response body from {url} exceeds {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("the response from {url} is not the JSON expected")]
    Json {
        url: String,
        #[source]
        err: serde_json::Error,
    },
    #[error("cannot build the request")]
    Request(#[from] hyper::http::Error),
    #[error("cannot set TCP keepalive")]
    Keepalive(#[source] nix::Error),
}

/// Timeouts and TLS of a [`Client`].
#[derive(Debug, Clone)]
pub struct Options {
    /// TLS for `https://` URLs; `None` = verify against the system's roots.
    pub tls: Option<ClientTls>,
    pub connect_timeout: Duration,
    /// Until the response head has arrived; also the deadline of a whole-body read.
    pub response_timeout: Duration,
    /// TCP keepalive: idle time before the first probe (probes every idle/3, 3 of them).
    pub keepalive: Option<Duration>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            tls: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            keepalive: Some(Duration::from_secs(30)),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Idle connections, each with its peer (`https://host:port` or `http://...`).
#[derive(Debug, Default)]
struct Pool(Mutex<Vec<(String, Sender)>>);

impl Pool {
    fn put(&self, peer: String, s: Sender) {
        if let Ok(mut v) = self.0.lock() {
            // One idle connection per peer is all a sequential caller needs.
            v.retain(|(p, _)| *p != peer);
            v.push((peer, s));
        }
    }

    fn take(&self, peer: &str) -> Option<Sender> {
        let mut v = self.0.lock().ok()?;
        let i = v.iter().position(|(p, _)| p == peer)?;
        Some(v.swap_remove(i).1)
    }
}

/// A cheap-to-clone client.
#[derive(Debug, Clone)]
pub struct Client {
    opts: Arc<Options>,
    tls: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
    /// Keep-alive connections ([`Client::reusing`]); `None` = one per request.
    pool: Option<Arc<Pool>>,
}

fn peer(url: &Url) -> String {
    format!(
        "{}://{}",
        if url.tls { "https" } else { "http" },
        url.authority()
    )
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Request {
    pub fn get(url: Url) -> Request {
        Request {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// A request with a JSON body (`Content-Type: application/json`). Fails only for a
    /// value serde cannot write as JSON (a map with non-string keys, say).
    pub fn json(
        method: Method,
        url: Url,
        body: &impl serde::Serialize,
    ) -> Result<Request, serde_json::Error> {
        Ok(Request {
            method,
            url,
            headers: vec![("content-type", "application/json".into())],
            body: serde_json::to_vec(body)?.into(),
        })
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }
}

impl Client {
    /// A client; TLS settings are checked now, so a bad CA file fails at start.
    pub fn new(opts: Options) -> Result<Client, Error> {
        let tls = Arc::new(OnceLock::new());
        if let Some(t) = &opts.tls {
            let _ = tls.set(t.config()?);
        }
        Ok(Client {
            opts: Arc::new(opts),
            tls,
            pool: None,
        })
    }

    /// This client keeping connections for reuse (the clones share them). Only for
    /// requests whose bodies are read to their end: a stream keeps its connection.
    pub fn reusing(mut self) -> Client {
        self.pool = Some(Arc::default());
        self
    }

    /// Drops the idle connections (e.g. when the peer is known to have restarted).
    pub fn forget(&self) {
        if let Some(Ok(mut v)) = self.pool.as_ref().map(|p| p.0.lock()) {
            v.clear();
        }
    }

    /// This client without connection reuse (sharing options and TLS): for a stream.
    pub fn single(&self) -> Client {
        Client {
            pool: None,
            ..self.clone()
        }
    }

    /// Opens a connection to `url`'s peer now, for the next request (reusing clients; a
    /// failure is left for that request to meet).
    pub async fn warm(&self, url: &Url) {
        let Some(pool) = &self.pool else { return };
        match self.connect(url).await {
            Ok(s) => pool.put(peer(url), s),
            Err(e) => tracing::debug!(error = %e, "cannot open a connection ahead"),
        }
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, Error> {
        if let Some(c) = self.tls.get() {
            return Ok(c.clone());
        }
        let c = ClientTls::system().config()?;
        Ok(self.tls.get_or_init(|| c).clone())
    }

    /// Sends `req` and returns once the response head has arrived.
    pub async fn send(&self, req: Request) -> Result<Response, Error> {
        if let Some(pool) = &self.pool {
            let key = peer(&req.url);
            // An idle connection the peer has closed fails `ready`; take the next.
            while let Some(mut s) = pool.take(&key) {
                if s.ready().await.is_ok() {
                    return self.exchange(s, req, true).await;
                }
            }
        }
        let sender = self.connect(&req.url).await?;
        self.exchange(sender, req, false).await
    }

    /// A new connection to `url`'s peer (TCP, then TLS for https), HTTP/1.1 on it.
    async fn connect(&self, url: &Url) -> Result<Sender, Error> {
        let addr = url.authority();
        let after = self.opts.connect_timeout;
        let tcp = tokio::time::timeout(after, TcpStream::connect(&addr))
            .await
            .map_err(|_| Error::ConnectTimeout {
                addr: addr.clone(),
                after,
            })?
            .map_err(|err| Error::Connect {
                addr: addr.clone(),
                err,
            })?;
        if let Some(idle) = self.opts.keepalive {
            keepalive(&tcp, idle)?;
        }
        let _ = tcp.set_nodelay(true);
        if url.tls {
            let name = ServerName::try_from(url.host.clone()).map_err(|_| Error::ServerName {
                host: url.host.clone(),
            })?;
            let connector = tokio_rustls::TlsConnector::from(self.tls_config()?);
            let tls = tokio::time::timeout(after, connector.connect(name, tcp))
                .await
                .map_err(|_| Error::ConnectTimeout {
                    addr: addr.clone(),
                    after,
                })?
                .map_err(|err| Error::Handshake {
                    addr: addr.clone(),
                    err,
                })?;
            handshake(TokioIo::new(tls), &addr).await
        } else {
            handshake(TokioIo::new(tcp), &addr).await
        }
    }

    /// Sends `req` on `sender`. On a `reused` connection that closed before the request
    /// went out, the request is sent again on a new one (it never reached the peer).
    async fn exchange(
        &self,
        mut sender: Sender,
        req: Request,
        reused: bool,
    ) -> Result<Response, Error> {
        let addr = req.url.authority();
        let mut b = hyper::Request::builder()
            .method(req.method.clone())
            .uri(req.url.path.as_str())
            .header("host", addr.as_str());
        for (k, v) in &req.headers {
            b = b.header(*k, v.as_str());
        }
        let request = b.body(Full::new(req.body.clone()))?;
        let after = self.opts.response_timeout;
        let url = req.url.to_string();
        let sent = tokio::time::timeout(after, sender.try_send_request(request))
            .await
            .map_err(|_| Error::Timeout {
                url: url.clone(),
                after,
            })?;
        let resp = match sent {
            Ok(r) => r,
            Err(mut e) => {
                if reused && e.take_message().is_some() {
                    let fresh = self.connect(&req.url).await?;
                    return Box::pin(self.exchange(fresh, req, false)).await;
                }
                return Err(Error::Http {
                    addr,
                    err: e.into_error(),
                });
            }
        };
        let (parts, body) = resp.into_parts();
        let back = self.pool.clone().map(|p| (p, peer(&req.url), sender));
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            url,
            timeout: after,
            back,
        })
    }

    /// GET and read a JSON body of at most `limit` bytes; a non-2xx status is returned as
    /// `Ok(Err((status, body)))` so callers can tell "refused" from "unreachable".
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        req: Request,
        limit: usize,
    ) -> Result<Result<T, (StatusCode, Bytes)>, Error> {
        let resp = self.send(req).await?;
        if !resp.status.is_success() {
            let status = resp.status;
            return Ok(Err((status, resp.bytes(limit).await.unwrap_or_default())));
        }
        resp.json(limit).await.map(Ok)
    }
}

async fn handshake<I>(io: I, addr: &str) -> Result<Sender, Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|err| Error::Http {
            addr: addr.to_string(),
            err,
        })?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP connection ended");
        }
    });
    Ok(sender)
}

fn keepalive(tcp: &TcpStream, idle: Duration) -> Result<(), Error> {
    use nix::sys::socket::{setsockopt, sockopt};
    let idle_s = idle.as_secs().clamp(1, u32::MAX as u64) as u32;
    setsockopt(tcp, sockopt::KeepAlive, &true).map_err(Error::Keepalive)?;
    setsockopt(tcp, sockopt::TcpKeepIdle, &idle_s).map_err(Error::Keepalive)?;
    setsockopt(tcp, sockopt::TcpKeepInterval, &(idle_s / 3).max(1)).map_err(Error::Keepalive)?;
    setsockopt(tcp, sockopt::TcpKeepCount, &3).map_err(Error::Keepalive)?;
    Ok(())
}

/// A response whose body has not been read yet.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    body: Incoming,
    url: String,
    timeout: Duration,
    /// Where the connection goes once the body has been read to its end (reusing clients).
    back: Option<(Arc<Pool>, String, Sender)>,
}

impl Response {
    /// The next piece of the body as it arrives (`None` at its end). Streams have no
    /// deadline here: wrap the call in a timeout for silence detection.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.body.frame().await {
                None => {
                    if let Some((pool, peer, s)) = self.back.take() {
                        pool.put(peer, s);
                    }
                    return Ok(None);
                }
                Some(Err(err)) => {
                    return Err(Error::Http {
                        addr: self.url.clone(),
                        err,
                    })
                }
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }

    /// The whole body, at most `limit` bytes, within the response timeout.
    pub async fn bytes(mut self, limit: usize) -> Result<Bytes, Error> {
        let after = self.timeout;
        let url = self.url.clone();
        tokio::time::timeout(after, async {
            let mut buf = Vec::new();
            while let Some(c) = self.chunk().await? {
                if buf.len() + c.len() > limit {
                    return Err(Error::TooLarge {
                        url: self.url.clone(),
                        limit,
                    });
                }
                buf.extend_from_slice(&c);
            }
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|_| Error::Timeout { url, after })?
    }

    pub async fn json<T: serde::de::DeserializeOwned>(self, limit: usize) -> Result<T, Error> {
        let url = self.url.clone();
        let body = self.bytes(limit).await?;
        serde_json::from_slice(&body).map_err(|err| Error::Json { url, err })
    }
}
