//! Supervisor-mode logging: a small `tracing` subscriber that writes one line per event
//! to stderr (`2026-11-23T23:06:47.628Z INFO service started service=db pid=2`).
//! Written here instead of pulling in tracing-subscriber, whose size would also grow the
//! pages the tini mode touches. Level from BERTH_LOG (`error`, `warn`, `info`, `debug`,
//! `trace`); default `info`, `debug` in debug mode.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

struct Line(String, String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.1, " {}={value:?}", field.name());
        }
    }
}

/// The subscriber.
pub struct StderrLog {
    max: Level,
}

/// `2026-11-23T23:06:47.628Z` for a time since the epoch.
pub fn timestamp(since_epoch: std::time::Duration) -> String {
    let secs = since_epoch.as_secs() as i64;
    let (y, m, d) = crate::cron::schedule::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        since_epoch.subsec_millis()
    )
}

impl Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new(), String::new());
        event.record(&mut line);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let text = format!(
            "{} {:>5} {}{}\n",
            timestamp(now),
            event.metadata().level(),
            line.0,
            line.1
        );
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Parses a BERTH_LOG value.
pub fn level(text: &str) -> Option<Level> {
    match text.trim().to_ascii_lowercase().as_str() {
        "error" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

/// Installs the subscriber (once; later calls do nothing).
pub fn init(debug: bool) {
    let default = if debug { Level::DEBUG } else { Level::INFO };
    let max = std::env::var("BERTH_LOG")
        .ok()
        .and_then(|v| level(&v))
        .unwrap_or(default);
    let _ = tracing::subscriber::set_global_default(StderrLog { max });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time_and_levels() {
        assert_eq!(
            timestamp(std::time::Duration::from_millis(1_795_474_570_123)),
            "2026-11-23T22:56:10.123Z"
        );
        assert_eq!(level("DEBUG"), Some(Level::DEBUG));
        assert_eq!(level("loud"), None);
    }
}
