//! Health checks: the state machine (pure) and the probes that run them.

pub mod probe;
pub mod state;

pub use state::{HealthEvent, HealthState, HealthTiming};
