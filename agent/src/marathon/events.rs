//! `GET /v2/events`, as a stream of typed events that never ends: the connection is
//! reopened after it drops, goes silent (no byte, not even a keep-alive, within the idle
//! timeout) or cannot be made, with a doubling backoff, moving on to the next Marathon URL
//! when one cannot be reached.

use std::collections::VecDeque;
use std::time::Duration;

use berth_http::client::Response;
use berth_http::sse::Parser;

use super::client::{check_status, Error, Marathon};
use super::types::{self, Event};

/// The largest single event accepted (Marathon's deployment events can be large).
const EVENT_LIMIT: usize = 4 << 20;

/// What [`EventStream::next`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A (re)connection to `url` succeeded. Events may have been missed before it, so a
    /// consumer that keeps state should reconcile (list the tasks) now.
    Connected {
        url: String,
    },
    Event(Event),
}

struct Conn {
    resp: Response,
    parser: Parser,
    url: String,
    /// Some data came on this connection (resets the backoff).
    fed: bool,
}

/// The event stream; see the module docs for how it keeps itself open.
pub struct EventStream {
    marathon: Marathon,
    path: String,
    conn: Option<Conn>,
    queue: VecDeque<Event>,
    /// URL index to connect to next.
    next_url: usize,
    /// Wait before the next connection attempt (None: connect at once).
    wait: Option<Duration>,
    backoff: Duration,
}

impl Marathon {
    /// The event stream, filtered by Marathon to `types` (`event_type=` query parameters;
    /// empty = all). Nothing is sent until the first [`EventStream::next`].
    pub fn events(&self, types: &[&str]) -> EventStream {
        let query: Vec<String> = types.iter().map(|t| format!("event_type={t}")).collect();
        let path = if query.is_empty() {
            "/v2/events".to_string()
        } else {
            format!("/v2/events?{}", query.join("&"))
        };
        EventStream {
            marathon: self.clone(),
            path,
            conn: None,
            queue: VecDeque::new(),
            next_url: self.preferred(),
            wait: None,
            backoff: self.config().backoff.min,
        }
    }
}

impl EventStream {
    /// The next event, or `Connected` after each successful (re)connection. An `Err`
    /// reports one failure (connect refused, 401, stream ended, silence, an event that
    /// does not parse); the stream itself goes on: call `next` again (it waits the
    /// backoff first when the connection is down).
    pub async fn next(&mut self) -> Result<Item, Error> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Item::Event(e));
            }
            let Some(conn) = &mut self.conn else {
                return self.connect().await;
            };
            let idle = self.marathon.config().idle_timeout;
            let chunk = match tokio::time::timeout(idle, conn.resp.chunk()).await {
                Err(_) => Err(Error::Silent {
                    url: conn.url.clone(),
                    after: idle,
                }),
                Ok(Ok(None)) => Err(Error::Ended {
                    url: conn.url.clone(),
                }),
                Ok(Err(err)) => Err(Error::Http {
                    url: conn.url.clone(),
                    err,
                }),
                Ok(Ok(Some(c))) => Ok(c),
            };
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    self.dropped(false);
                    return Err(e);
                }
            };
            if !conn.fed {
                conn.fed = true;
                self.backoff = self.marathon.config().backoff.min;
            }
            let events = match conn.parser.feed(&chunk) {
                Ok(ev) => ev,
                Err(err) => {
                    let url = conn.url.clone();
                    self.dropped(false);
                    return Err(Error::Framing { url, err });
                }
            };
            let url = conn.url.clone();
            let mut bad = None;
            for ev in events {
                match types::event(&ev.event, &ev.data) {
                    Ok(e) => self.queue.push_back(e),
                    Err(err) => {
                        bad.get_or_insert(Error::Decode {
                            url: url.clone(),
                            err,
                        });
                    }
                }
            }
            if let Some(e) = bad {
                return Err(e);
            }
        }
    }

    /// Forget the connection; the next attempt waits the backoff (and moves to the next
    /// URL when this one could not even be reached).
    fn dropped(&mut self, unreachable: bool) {
        self.conn = None;
        if unreachable {
            self.next_url = (self.next_url + 1) % self.marathon.config().urls.len();
        }
        self.wait = Some(self.backoff);
        self.backoff = (self.backoff * 2).min(self.marathon.config().backoff.max);
    }

    async fn connect(&mut self) -> Result<Item, Error> {
        if let Some(w) = self.wait.take() {
            tokio::time::sleep(w).await;
        }
        let i = self.next_url;
        let req = self
            .marathon
            .request(i, &self.path)
            .header("accept", "text/event-stream");
        let url = req.url.to_string();
        let resp = match self.marathon.http().send(req).await {
            Ok(r) => r,
            Err(err) => {
                self.dropped(true);
                return Err(Error::Http { url, err });
            }
        };
        if !resp.status.is_success() {
            let status = resp.status;
            let body = resp.bytes(4096).await.unwrap_or_default();
            let e = check_status(&url, status, &body)
                .err()
                .unwrap_or(Error::Status {
                    url,
                    status: status.as_u16(),
                    body: String::new(),
                });
            self.dropped(e.moves_on());
            return Err(e);
        }
        let ct = resp
            .headers
            .get(berth_http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if !ct.starts_with("text/event-stream") {
            self.dropped(true);
            return Err(Error::NotEventStream {
                url,
                content_type: ct,
            });
        }
        self.marathon.prefer(i);
        self.conn = Some(Conn {
            resp,
            parser: Parser::new(EVENT_LIMIT),
            url: url.clone(),
            fed: false,
        });
        Ok(Item::Connected { url })
    }
}

impl Error {
    /// After this answer, try the next URL (a 5xx or an unknown path; 401 is the same
    /// everywhere, but moving on costs nothing).
    fn moves_on(&self) -> bool {
        !matches!(self, Error::Unauthorized { .. })
    }
}
