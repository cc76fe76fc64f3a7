//! A Marathon client for berth's central services (the LVS director, database auth):
//! the tasks of an app and the event stream as typed events.
//!
//! # Layout
//! - [`types`]: Marathon's JSON (tasks, events) parsed into typed values; SSE event
//!   names and data into [`types::Event`].

pub mod types;
