//! Requests from the status socket.

use std::time::Instant;

use super::engine::Engine;
use super::os::Os;
use super::service::{AfterStop, Phase};
use crate::status::{error_line, Request};

impl<O: Os> Engine<O> {
    /// Answers one request with one JSON line.
    pub fn handle_request(&mut self, req: &Request, now: Instant) -> String {
        let name = match req {
            // A wait whose state already changed is answered at once (the run loop holds
            // the others until the state changes or their time is up).
            Request::Status | Request::Wait { .. } => {
                return serde_json::to_string(&self.status())
                    .unwrap_or_else(|e| error_line(&e.to_string()))
            }
            Request::Restart { service }
            | Request::Stop { service }
            | Request::Start { service } => service,
        };
        let Some(i) = self.index_of(name) else {
            let names: Vec<&str> = self.services.iter().map(|s| s.spec.name.as_str()).collect();
            return error_line(&format!(
                "no service {name:?}; services are: {}",
                names.join(", ")
            ));
        };
        if self.shutting_down {
            return error_line("init is shutting down");
        }
        let phase = self.services[i].phase;
        let result = match req {
            Request::Stop { .. } => match phase {
                Phase::Stopping { .. } | Phase::PostStop => Err("already stopping"),
                Phase::Stopped => Err("already stopped"),
                _ => {
                    self.begin_stop(i, AfterStop::Park, now);
                    Ok(())
                }
            },
            Request::Start { .. } => match phase {
                Phase::Stopped | Phase::Failed | Phase::Exited | Phase::Backoff { .. } => {
                    self.services[i].backoff.reset();
                    self.services[i].phase = Phase::Waiting;
                    self.start_ready(now);
                    Ok(())
                }
                _ => Err("already running or starting"),
            },
            Request::Restart { .. } => match phase {
                Phase::Running { .. } => {
                    self.services[i].backoff.reset();
                    self.begin_stop(i, AfterStop::Restart, now);
                    Ok(())
                }
                Phase::Stopping { .. } | Phase::PostStop => Err("stopping; start it once stopped"),
                _ => {
                    self.services[i].backoff.reset();
                    self.services[i].restarts += 1;
                    self.services[i].phase = Phase::Waiting;
                    self.start_ready(now);
                    Ok(())
                }
            },
            Request::Status | Request::Wait { .. } => Ok(()),
        };
        match result {
            Ok(()) => {
                serde_json::to_string(&self.status()).unwrap_or_else(|e| error_line(&e.to_string()))
            }
            Err(e) => error_line(&format!("{name}: {e}")),
        }
    }
}
