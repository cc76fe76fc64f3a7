//! Logging: plain lines on stderr for journald; colours only when stderr is a terminal.

use std::io::IsTerminal;

/// Installs the subscriber; the level comes from `BERTH_LOG` (env-filter syntax, default
/// `info`).
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
