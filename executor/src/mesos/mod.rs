//! The Mesos v1 executor HTTP API: environment, JSON types, RecordIO, HTTP, calls and
//! events, the update store and the kill rules.

pub mod call;
pub mod duration;
pub mod env;
pub mod event;
pub mod http;
pub mod json;
pub mod kill;
pub mod link;
pub mod recordio;
pub mod ssl;
pub mod types;
pub mod updates;
