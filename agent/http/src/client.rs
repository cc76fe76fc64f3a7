//! The client: one request per connection (berth's peers are few and its long-lived
//! requests are streams: the Mesos agent's SUBSCRIBE, Marathon's `/v2/events`).
//!
//! Each request gets a connect timeout, TCP keepalive (so a peer that vanishes is noticed
//! even on a silent stream), a timeout for the response head, and, when the body is read
//! whole, a bounded size and a deadline.

use std::sync::{Arc, OnceLock};
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

/// A cheap-to-clone client.
#[derive(Debug, Clone)]
pub struct Client {
    opts: Arc<Options>,
    tls: Arc<OnceLock<Arc<rustls::ClientConfig>>>,
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
        })
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
        let url = req.url.clone();
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
        let sender = if url.tls {
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
            handshake(TokioIo::new(tls), &addr).await?
        } else {
            handshake(TokioIo::new(tcp), &addr).await?
        };
        self.exchange(sender, req, addr).await
    }

    async fn exchange(
        &self,
        mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
        req: Request,
        addr: String,
    ) -> Result<Response, Error> {
        let mut b = hyper::Request::builder()
            .method(req.method)
            .uri(req.url.path.as_str())
            .header("host", addr.as_str());
        for (k, v) in &req.headers {
            b = b.header(*k, v.as_str());
        }
        let request = b.body(Full::new(req.body))?;
        let after = self.opts.response_timeout;
        let url = req.url.to_string();
        let resp = tokio::time::timeout(after, sender.send_request(request))
            .await
            .map_err(|_| Error::Timeout {
                url: url.clone(),
                after,
            })?
            .map_err(|err| Error::Http { addr, err })?;
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            url,
            timeout: after,
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

async fn handshake<I>(
    io: I,
    addr: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Error>
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
}

impl Response {
    /// The next piece of the body as it arrives (`None` at its end). Streams have no
    /// deadline here: wrap the call in a timeout for silence detection.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Error> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
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
