//! One SUBSCRIBE connection: sends the call, then turns the chunked RecordIO stream into
//! events for the session. Every message carries the connection's generation so the
//! session can ignore a connection it has already given up on.

use tokio::sync::mpsc;

use crate::mesos::event::Event;
use crate::mesos::http::{is_permanent, AgentClient};
use crate::mesos::link::Link;
use crate::mesos::recordio::Decoder;

#[derive(Debug)]
pub enum ConnMsg {
    Event(u64, Event),
    /// The stream ended or broke.
    Closed(u64, String),
    /// SUBSCRIBE failed: `retry` for connection errors, 503 and 404; not for a TLS
    /// handshake that failed on the certificate or protocol (no retry can cure it).
    Failed {
        gen: u64,
        retry: bool,
        why: String,
    },
}

pub async fn subscribe(
    gen: u64,
    agent: AgentClient,
    link: Link,
    body: Vec<u8>,
    tx: mpsc::UnboundedSender<ConnMsg>,
) {
    let mut resp = match agent.subscribe(body).await {
        Ok(r) => r,
        Err(e) => {
            let _ = tx.send(ConnMsg::Failed {
                gen,
                retry: !is_permanent(&e),
                why: error_chain(&e),
            });
            return;
        }
    };
    if resp.status != 200 {
        let status = resp.status.as_u16();
        let body = resp.bytes(4096).await.unwrap_or_default();
        let _ = tx.send(ConnMsg::Failed {
            gen,
            retry: matches!(status, 503 | 404),
            why: format!(
                "SUBSCRIBE answered {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ),
        });
        return;
    }
    // The connection for the calls that follow (UPDATE, MESSAGE), ready before they are.
    let warm = agent.clone();
    tokio::spawn(async move { warm.warm().await });
    let mut decoder = Decoder::new();
    let why = loop {
        // The agent heartbeats the stream: silence beyond the link's limit means the
        // agent (or the path to it) is gone even though TCP did not say so.
        let next = tokio::time::timeout(link.stream_silence, resp.chunk()).await;
        let Ok(next) = next else {
            break format!(
                "the event stream carried nothing (not even HEARTBEAT) for {:?}",
                link.stream_silence
            );
        };
        match next {
            Ok(Some(chunk)) => match decoder.feed(&chunk) {
                Ok(records) => {
                    for r in records {
                        match Event::parse(&r) {
                            Ok(ev) => {
                                if tx.send(ConnMsg::Event(gen, ev)).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(error = %error_chain(&e), "ignoring an undecodable event")
                            }
                        }
                    }
                }
                Err(e) => break format!("corrupt event stream: {e}"),
            },
            Ok(None) => break "the agent closed the event stream".to_string(),
            Err(e) => break error_chain(&e),
        }
    };
    agent.forget();
    let _ = tx.send(ConnMsg::Closed(gen, why));
}

/// `a: b: c` for an error and its sources.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Posts one non-SUBSCRIBE call; returns the status code.
pub async fn post(agent: &AgentClient, body: Vec<u8>) -> Result<u16, String> {
    let resp = agent.post(body).await.map_err(|e| error_chain(&e))?;
    let status = resp.status.as_u16();
    // Read to its end (even an empty 202): then the connection serves the next call.
    let body = resp.bytes(4096).await.unwrap_or_default();
    if status != 202 {
        return Err(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(&body).trim()
        ));
    }
    Ok(status)
}
