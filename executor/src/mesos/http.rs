//! The executor's connection to the agent, on the workspace's HTTP stack (berth-http:
//! hyper + rustls): every call is a `POST /api/v1/executor`, over TLS when the agent's
//! `LIBPROCESS_SSL_*` settings say so ([`super::ssl`]). Like Mesos' own executor library
//! (one subscribe connection, one non-subscribe connection), SUBSCRIBE has a connection of
//! its own and the other calls share one kept-alive connection, opened when the
//! subscription is up ([`AgentClient::warm`]), so an update pays no TCP or TLS handshake.
//! SUBSCRIBE's answer is read as a stream ([`Response::chunk`]), the others whole.

use berth_http::client::{Client, Error, Request, Response};
use berth_http::tls::ClientTls;
use berth_http::url::Url;
use berth_http::Method;

use super::env::{ExecutorEnv, Secret};
use super::ssl::AgentTls;

pub const PATH: &str = "/api/v1/executor";

#[derive(Debug, thiserror::Error)]
pub enum AgentClientError {
    #[error("MESOS_AGENT_ENDPOINT {endpoint:?} is not a host:port")]
    Endpoint {
        endpoint: String,
        #[source]
        err: berth_http::url::UrlError,
    },
    #[error("TLS settings for the agent (LIBPROCESS_SSL_*)")]
    Tls(#[source] Error),
}

/// A cheap-to-clone client for the agent's executor API.
#[derive(Debug, Clone)]
pub struct AgentClient {
    client: Client,
    url: Url,
    token: Option<Secret>,
}

fn client_tls(t: &AgentTls) -> ClientTls {
    ClientTls {
        ca_file: t.ca_file.clone(),
        ca_dir: t.ca_dir.clone(),
        verify: t.verify,
        cert_file: Some(t.cert_file.clone()),
        key_file: Some(t.key_file.clone()),
    }
}

impl AgentClient {
    /// The client for `env`'s agent. TLS files are read now: a missing or empty CA or
    /// key file is an error at start, not at the first call.
    pub fn new(env: &ExecutorEnv) -> Result<AgentClient, AgentClientError> {
        let scheme = if env.tls.is_some() { "https" } else { "http" };
        let url =
            Url::parse(&format!("{scheme}://{}{PATH}", env.agent_endpoint)).map_err(|err| {
                AgentClientError::Endpoint {
                    endpoint: env.agent_endpoint.clone(),
                    err,
                }
            })?;
        let opts = env.link.options(env.tls.as_ref().map(client_tls));
        let client = Client::new(opts).map_err(AgentClientError::Tls)?.reusing();
        Ok(AgentClient {
            client,
            url,
            token: env.auth_token.clone(),
        })
    }

    /// `host:port` of the agent.
    pub fn endpoint(&self) -> String {
        self.url.authority()
    }

    /// At each (re)subscription, like Mesos' library: forgets the connection of the
    /// previous subscription and opens the one the next calls will use (errors are left
    /// for them).
    pub async fn warm(&self) {
        self.client.forget();
        self.client.warm(&self.url).await
    }

    /// Forgets the calls' connection (the stream broke: the agent may be a new process).
    pub fn forget(&self) {
        self.client.forget();
    }

    /// Posts SUBSCRIBE on a connection of its own (it becomes the event stream).
    pub async fn subscribe(&self, body: Vec<u8>) -> Result<Response, Error> {
        self.client.single().send(self.request(body)).await
    }

    /// Posts one call (JSON); returns once the answer's head has arrived.
    pub async fn post(&self, body: Vec<u8>) -> Result<Response, Error> {
        self.client.send(self.request(body)).await
    }

    fn request(&self, body: Vec<u8>) -> Request {
        let mut req = Request {
            method: Method::POST,
            url: self.url.clone(),
            headers: vec![
                ("content-type", "application/json".into()),
                ("accept", "application/json".into()),
            ],
            body: body.into(),
        };
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {}", t.expose()));
        }
        req
    }
}

/// An error no retry can cure: the TLS handshake failed on the certificate or the
/// protocol (an untrusted CA, a name mismatch, a peer that does not speak TLS). A
/// connection reset during the handshake (an agent restarting) is not one.
pub fn is_permanent(e: &Error) -> bool {
    matches!(e, Error::Handshake { err, .. } if err.kind() == std::io::ErrorKind::InvalidData)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn env(endpoint: &str, extra: &[(&str, &str)]) -> ExecutorEnv {
        let mut v = vec![
            ("MESOS_FRAMEWORK_ID", "fw"),
            ("MESOS_EXECUTOR_ID", "ex"),
            ("MESOS_AGENT_ENDPOINT", endpoint),
            ("MESOS_DIRECTORY", "/tmp"),
            ("MESOS_CHECKPOINT", "1"),
            ("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "tok"),
        ];
        v.extend_from_slice(extra);
        ExecutorEnv::from_vars(v).unwrap()
    }

    #[tokio::test]
    async fn posts_json_with_the_token_and_streams_the_answer() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = vec![0; 4096];
            let n = s.read(&mut req).await.unwrap();
            req.truncate(n);
            s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
            String::from_utf8(req).unwrap()
        });
        let c = AgentClient::new(&env(&addr, &[])).unwrap();
        let mut resp = c.post(b"{}".to_vec()).await.unwrap();
        assert_eq!(resp.status, 200);
        let mut body = Vec::new();
        while let Some(c) = resp.chunk().await.unwrap() {
            body.extend_from_slice(&c);
        }
        assert_eq!(body, b"hello world");
        let sent = h.await.unwrap().to_ascii_lowercase();
        assert!(
            sent.starts_with("post /api/v1/executor http/1.1\r\n"),
            "{sent}"
        );
        assert!(sent.contains("authorization: bearer tok\r\n"));
        assert!(sent.contains("content-type: application/json\r\n"));
        assert!(sent.contains("accept: application/json\r\n"));
        assert!(sent.ends_with("\r\n\r\n{}"));
    }

    #[tokio::test]
    async fn refused_connection_names_the_endpoint_and_is_retried() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        let c = AgentClient::new(&env(&addr, &[])).unwrap();
        let err = c.post(Vec::new()).await.unwrap_err();
        assert!(err.to_string().contains(&addr), "{err}");
        assert!(!is_permanent(&err));
    }

    #[tokio::test]
    async fn tls_to_a_plain_agent_is_a_permanent_error() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let ck = rcgen::generate_simple_self_signed(vec!["executor".into()]).unwrap();
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let tls = [
            ("LIBPROCESS_SSL_ENABLED", "1"),
            ("LIBPROCESS_SSL_CERT_FILE", cert.to_str().unwrap()),
            ("LIBPROCESS_SSL_KEY_FILE", key.to_str().unwrap()),
        ];
        let c = AgentClient::new(&env(&addr, &tls)).unwrap();
        let err = c.post(Vec::new()).await.unwrap_err();
        assert!(is_permanent(&err), "{err:?}");
    }

    #[test]
    fn a_missing_ca_file_fails_at_start() {
        let tls = [
            ("LIBPROCESS_SSL_ENABLED", "1"),
            ("LIBPROCESS_SSL_VERIFY_CERT", "1"),
            ("LIBPROCESS_SSL_CA_FILE", "/nonexistent/ca.pem"),
            ("LIBPROCESS_SSL_CERT_FILE", "/nonexistent/c.pem"),
            ("LIBPROCESS_SSL_KEY_FILE", "/nonexistent/k.pem"),
        ];
        let err = AgentClient::new(&env("127.0.0.1:1", &tls)).unwrap_err();
        let text = crate::session::connection::error_chain(&err);
        assert!(text.contains("/nonexistent/"), "{text}");
    }
}
