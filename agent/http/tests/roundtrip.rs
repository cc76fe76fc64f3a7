//! Client and server of berth-http against each other, plain and TLS (certificates made
//! here with rcgen): the peer address reaches the handler, bodies stream, a wrong CA is a
//! handshake error and not a hang.

use std::time::Duration;

use berth_http::client::{Client, Error, Options, Request};
use berth_http::server::{self, channel};
use berth_http::tls::{ClientTls, ServerTls};
use berth_http::url::Url;
use berth_http::{Bytes, StatusCode};

async fn start(tls: Option<ServerTls>) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let tls = tls.map(|t| t.config().unwrap());
    tokio::spawn(server::serve(
        l,
        tls,
        |req, peer| async move {
            match req.uri().path() {
                "/stream" => {
                    let (tx, body) = channel(4);
                    tokio::spawn(async move {
                        for i in 0..3 {
                            let _ = tx.send(Bytes::from(format!("part{i};"))).await;
                        }
                    });
                    hyper::Response::new(body)
                }
                "/port" => server::respond(StatusCode::OK, "text/plain", peer.port().to_string()),
                _ => {
                    let body = server::read_body(req, 1024).await.unwrap_or_default();
                    let text = format!("{}|{}", peer.ip(), String::from_utf8_lossy(&body));
                    server::respond(StatusCode::OK, "text/plain", text)
                }
            }
        },
        async {
            let _ = rx.await;
        },
    ));
    (addr, stop)
}

fn certs(dir: &std::path::Path) -> (ServerTls, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.clone().self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca_cert, &ca_key)
        .unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other = ca.self_signed(&other_key).unwrap();
    let w = |n: &str, s: String| {
        let p = dir.join(n);
        std::fs::write(&p, s).unwrap();
        p
    };
    let st = ServerTls {
        cert_file: w("leaf.pem", leaf.pem()),
        key_file: w("leaf.key", key.serialize_pem()),
        client_ca_file: None,
    };
    (st, w("ca.pem", ca_cert.pem()), w("other.pem", other.pem()))
}

#[tokio::test]
async fn plain_request_carries_the_peer_address_and_a_body() {
    let (addr, _stop) = start(None).await;
    let c = Client::new(Options::default()).unwrap();
    let url = Url::parse(&format!("http://{addr}/echo")).unwrap();
    let r = c
        .send(Request::json(hyper::Method::POST, url, &"hi").unwrap())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes(1024).await.unwrap(), "127.0.0.1|\"hi\"");
}

/// The client port of each of 3 requests, after `warm`.
async fn ports(c: &Client, url: &Url) -> Vec<String> {
    c.warm(url).await;
    let mut out = Vec::new();
    for _ in 0..3 {
        let r = c.send(Request::get(url.clone())).await.unwrap();
        out.push(String::from_utf8(r.bytes(64).await.unwrap().to_vec()).unwrap());
    }
    out
}

#[tokio::test]
async fn a_reusing_client_keeps_one_connection_and_others_do_not() {
    let (addr, _stop) = start(None).await;
    let url = Url::parse(&format!("http://{addr}/port")).unwrap();
    let reusing = Client::new(Options::default()).unwrap().reusing();
    let p = ports(&reusing, &url).await;
    assert!(p.iter().all(|x| *x == p[0]), "one connection: {p:?}");
    let once = Client::new(Options::default()).unwrap();
    let p = ports(&once, &url).await;
    assert!(p[0] != p[1] && p[1] != p[2], "a connection each: {p:?}");
}

#[tokio::test]
async fn streamed_body_arrives_whole_and_limits_hold() {
    let (addr, _stop) = start(None).await;
    let c = Client::new(Options::default()).unwrap();
    let url = Url::parse(&format!("http://{addr}/stream")).unwrap();
    let mut r = c.send(Request::get(url.clone())).await.unwrap();
    let mut got = Vec::new();
    while let Some(b) = r.chunk().await.unwrap() {
        got.extend_from_slice(&b);
    }
    assert_eq!(got, b"part0;part1;part2;");
    let r = c.send(Request::get(url)).await.unwrap();
    assert!(matches!(r.bytes(5).await, Err(Error::TooLarge { .. })));
}

#[tokio::test]
async fn tls_with_the_right_ca_and_a_clear_error_with_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let (st, ca, other) = certs(dir.path());
    let (addr, _stop) = start(Some(st)).await;
    let url = Url::parse(&format!("https://{addr}/x")).unwrap();
    let good = Client::new(Options {
        tls: Some(ClientTls {
            ca_file: Some(ca),
            verify: true,
            ..ClientTls::default()
        }),
        ..Options::default()
    })
    .unwrap();
    let r = good.send(Request::get(url.clone())).await.unwrap();
    assert_eq!(r.bytes(100).await.unwrap(), "127.0.0.1|");

    let bad = Client::new(Options {
        tls: Some(ClientTls {
            ca_file: Some(other),
            verify: true,
            ..ClientTls::default()
        }),
        connect_timeout: Duration::from_secs(3),
        ..Options::default()
    })
    .unwrap();
    let e = bad.send(Request::get(url.clone())).await.unwrap_err();
    let chain = format!(
        "{e}: {}",
        std::error::Error::source(&e)
            .map(|s| s.to_string())
            .unwrap_or_default()
    );
    assert!(matches!(e, Error::Handshake { .. }), "{chain}");
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("certificate"),
        "{chain}"
    );

    let unverified = Client::new(Options {
        tls: Some(ClientTls::default()),
        ..Options::default()
    })
    .unwrap();
    let r = unverified.send(Request::get(url)).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn refused_and_missing_files_are_named() {
    let c = Client::new(Options::default()).unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = c
        .send(Request::get(
            Url::parse(&format!("http://{addr}/")).unwrap(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    let e = Client::new(Options {
        tls: Some(ClientTls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            verify: true,
            ..ClientTls::default()
        }),
        ..Options::default()
    })
    .unwrap_err();
    let s = format!("{:?}", e);
    assert!(s.contains("/nonexistent/ca.pem"), "{s}");
}
