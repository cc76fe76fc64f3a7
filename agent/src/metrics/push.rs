//! The Open-Falcon push: a bounded buffer filled by each collection and drained by one
//! task that POSTs batches to the Falcon agent.
//!
//! Collection never waits on Falcon: [`Queue::offer`] only takes a lock for a moment,
//! and when the buffer is full the oldest items are dropped (and counted: they would be
//! the least useful to a dashboard by the time Falcon is back). A failed push is retried
//! with the same items after a backoff that doubles from 1 s to 60 s and resets on the
//! first success.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_http::client::{Client, Request};
use berth_http::url::Url;
use berth_http::Method;

use super::falcon::Item;

/// Items sent in one POST at most.
pub const BATCH: usize = 1000;
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Inner {
    items: VecDeque<Item>,
    /// How many items left the front so far (pushed or dropped): the sequence number of
    /// `items[0]`.
    front: u64,
    cap: usize,
    target: Option<Url>,
    dropped: u64,
    pushed: u64,
    failures: u64,
}

/// The buffer between collection and the pusher.
impl Inner {
    fn trim(&mut self) {
        while self.items.len() > self.cap {
            self.items.pop_front();
            self.front += 1;
            self.dropped += 1;
        }
    }
}

#[derive(Debug, Default)]
pub struct Queue {
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
}

/// The queue's counters (exported as `berth_agent_falcon_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub buffered: u64,
    pub dropped: u64,
    pub pushed: u64,
    pub failures: u64,
}

impl Queue {
    pub fn new(cap: usize, target: Option<Url>) -> Arc<Queue> {
        let q = Queue::default();
        q.configure(cap, target);
        Arc::new(q)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new size or URL (a config reload); `None` stops pushing and empties the buffer.
    pub fn configure(&self, cap: usize, target: Option<Url>) {
        let mut g = self.lock();
        g.cap = cap.max(1);
        if target.is_none() {
            g.front += g.items.len() as u64;
            g.items.clear();
        }
        g.target = target;
        g.trim();
    }

    /// Adds a step's items, dropping the oldest past the capacity. Never blocks.
    pub fn offer(&self, items: Vec<Item>) {
        {
            let mut g = self.lock();
            if g.target.is_none() {
                return;
            }
            g.items.extend(items);
            g.trim();
        }
        self.wake.notify_one();
    }

    pub fn counters(&self) -> Counters {
        let g = self.lock();
        Counters {
            buffered: g.items.len() as u64,
            dropped: g.dropped,
            pushed: g.pushed,
            failures: g.failures,
        }
    }

    /// The next batch and the sequence number of its first item (not removed:
    /// [`Queue::done`] removes it once pushed).
    fn peek(&self) -> Option<(Url, u64, Vec<Item>)> {
        let g = self.lock();
        let url = g.target.clone()?;
        (!g.items.is_empty()).then(|| (url, g.front, g.items.iter().take(BATCH).cloned().collect()))
    }

    /// The batch starting at sequence `start` was pushed. What of it was dropped meanwhile
    /// (the buffer overflowed during the push) has already left: only the rest is removed.
    fn done(&self, start: u64, len: usize) {
        let mut g = self.lock();
        let end = start + len as u64;
        let n = (end.saturating_sub(g.front) as usize).min(g.items.len());
        g.items.drain(..n);
        g.front += n as u64;
        g.pushed += len as u64;
    }

    fn failed(&self) {
        self.lock().failures += 1;
    }
}

/// Pushes until the task is dropped (the service stops).
pub async fn run(queue: Arc<Queue>, client: Client) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let Some((url, start, batch)) = queue.peek() else {
            queue.wake.notified().await;
            continue;
        };
        match push(&client, &url, &batch).await {
            Ok(()) => {
                queue.done(start, batch.len());
                backoff = BACKOFF_MIN;
            }
            Err(why) => {
                queue.failed();
                tracing::warn!(url = %url.authority(), "Open-Falcon push failed (retry in {} s): {why}", backoff.as_secs());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

async fn push(client: &Client, url: &Url, batch: &[Item]) -> Result<(), String> {
    let req = Request::json(Method::POST, url.clone(), &batch).map_err(|e| e.to_string())?;
    let resp = client.send(req).await.map_err(|e| crate::error_chain(&e))?;
    let status = resp.status;
    let _ = resp.bytes(64 * 1024).await;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the agent answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(n: i64) -> Item {
        Item {
            endpoint: "web".into(),
            metric: "mem.memused".into(),
            timestamp: n,
            step: 60,
            value: n as f64,
            counter_type: "GAUGE".into(),
            tags: "task=t".into(),
        }
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_them() {
        let q = Queue::new(
            3,
            Some(Url::parse("http://127.0.0.1:1988/v1/push").unwrap()),
        );
        q.offer((0..5).map(item).collect());
        assert_eq!(
            q.counters(),
            Counters {
                buffered: 3,
                dropped: 2,
                pushed: 0,
                failures: 0
            }
        );
        let (_, start, batch) = q.peek().unwrap();
        assert_eq!(
            batch.iter().map(|i| i.timestamp).collect::<Vec<_>>(),
            [2, 3, 4]
        );
        // Two more arrive during the push: the oldest two of the batch are dropped; the
        // push then removes only what is left of it (4), not the new items.
        q.offer(vec![item(5), item(6)]);
        q.done(start, batch.len());
        let (_, _, rest) = q.peek().unwrap();
        assert_eq!(rest.iter().map(|i| i.timestamp).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(q.counters().dropped, 4);
    }

    #[test]
    fn without_a_target_nothing_is_buffered() {
        let q = Queue::new(3, None);
        q.offer(vec![item(1)]);
        assert_eq!(q.counters().buffered, 0);
        assert!(q.peek().is_none());
    }

    #[test]
    fn a_failed_push_is_retried_after_a_backoff_with_the_same_items() {
        use berth_http::client::Options;
        use berth_http::StatusCode;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let hits = Arc::new(Mutex::new(Vec::<(u16, Vec<i64>)>::new()));
            let h = hits.clone();
            let handler = move |req, _| {
                let h = h.clone();
                async move {
                    let body = berth_http::server::read_body(req, 1 << 20).await.unwrap();
                    let items: Vec<Item> = serde_json::from_slice(&body).unwrap();
                    let mut g = h.lock().unwrap();
                    // The first push fails (Falcon's agent restarting), the next succeed.
                    let status = if g.is_empty() {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    };
                    g.push((status.as_u16(), items.iter().map(|i| i.timestamp).collect()));
                    berth_http::server::respond(status, "text/plain", "success")
                }
            };
            tokio::spawn(berth_http::server::serve(
                l,
                None,
                handler,
                std::future::pending::<()>(),
            ));
            let url = Url::parse(&format!("http://{addr}/v1/push")).unwrap();
            let q = Queue::new(10, Some(url));
            q.offer((0..3).map(item).collect());
            let pusher = tokio::spawn(run(q.clone(), Client::new(Options::default()).unwrap()));
            for _ in 0..100 {
                if q.counters().pushed == 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            pusher.abort();
            assert_eq!(
                *hits.lock().unwrap(),
                [(500, vec![0, 1, 2]), (200, vec![0, 1, 2])]
            );
            assert_eq!(
                q.counters(),
                Counters {
                    buffered: 0,
                    dropped: 0,
                    pushed: 3,
                    failures: 1
                }
            );
        });
    }
}
