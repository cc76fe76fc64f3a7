//! Tasks as containers: validation, preparation steps, the OCI bundle, runc, berth-init's
//! status socket, health checks, and the runner that ties them into task events.

pub mod config;
pub mod health;
pub mod names;
pub mod plan;
