//! A Marathon client for berth's central services (the LVS director, database auth):
//! the tasks of an app and the event stream as typed events.
//!
//! # Layout
//! - [`types`]: Marathon's JSON (tasks, events) parsed into typed values; SSE event
//!   names and data into [`types::Event`].
//! - [`config`]: the `[marathon]` TOML section (URL list, basic auth from a file, TLS,
//!   timeouts, backoff), strict, resolved into [`Config`].
//! - [`client`]: [`Marathon`]: `GET /v2/apps/{id}/tasks` with failover across the URLs.
//! - [`events`]: [`EventStream`]: `GET /v2/events` that reconnects by itself.
//!
//! # Use
//! ```no_run
//! # async fn f(raw: berth_agent::marathon::config::Raw) -> Result<(), Box<dyn std::error::Error>> {
//! use berth_agent::marathon::{types::Event, Item, Marathon};
//! let m = Marathon::new(raw.resolve()?)?;
//! let tasks = m.tasks("/shop/web").await?; // Err(UnknownApp) on 404, Unauthorized on 401
//! let mut events = m.events(&["status_update_event", "health_status_changed_event"]);
//! loop {
//!     match events.next().await {
//!         Ok(Item::Connected { .. }) => { /* events may have been missed: list tasks */ }
//!         Ok(Item::Event(Event::StatusUpdate(s))) => println!("{} {}", s.task_id, s.task_status),
//!         Ok(Item::Event(_)) => {}
//!         // One failure (unreachable, 401, dropped, silent); the next call reconnects
//!         // after the backoff, on the next URL if this one was unreachable.
//!         Err(e) => eprintln!("marathon: {e}"),
//!     }
//! }
//! # }
//! ```
//!
//! `EventStream::next` is cancel-safe (usable in `tokio::select!` next to a timer): its
//! only awaits are a backoff sleep, the connection attempt and the read of the next chunk,
//! and parsed events are queued in the stream before it returns. Drop the stream to stop.

pub mod client;
pub mod config;
pub mod events;
pub mod types;

pub use client::{Error, Marathon};
pub use config::Config;
pub use events::{EventStream, Item};
