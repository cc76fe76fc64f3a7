//! LVS registration of services (`lvs:` in the app spec): once a service is healthy,
//! init tells every configured director to add it as a real server of the VIP; weight 0
//! when its health fails and while it drains before a stop; DELETE after the stop.
//!
//! # Layout (each layer imports only those above it)
//! - [`wire`]: the director API's JSON bodies (`PUT`/`DELETE /v1/real-servers`).
//! - [`link`]: one (service, director) pair's pure state machine: what is wanted, what
//!   the director acknowledged, retry with backoff (slow after a 4xx), the last error.
//! - [`client`]: one call over berth-http, classified as done, transient or rejected.
//! - [`worker`]: a thread with its own current-thread runtime that drives every link
//!   (all directors in parallel), so PID 1's loop never waits on the network.

pub mod client;
pub mod link;
pub mod wire;
pub mod worker;
