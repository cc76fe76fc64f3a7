//! The message of a task that failed before it ran: what operators read in Marathon's UI.
//! One plain line, the step named first and its cause right after, at most
//! [`MAX_MESSAGE`] bytes; the details (every error, the executor's and init's log lines)
//! stay in the sandbox's `stderr`. Pure text: no I/O but reading that log's tail.

use std::path::Path;

use crate::task::steps::StepError;

/// The longest message sent in a TaskStatus.
pub const MAX_MESSAGE: usize = 500;

/// Removes ANSI escape sequences (CSI `ESC [ ... final`, and lone ESC pairs), turns line
/// breaks and other control characters into spaces, collapses runs of spaces.
pub fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates, then one final byte in @..~.
                for n in chars.by_ref() {
                    if ('@'..='~').contains(&n) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
            continue;
        }
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.trim_end().to_string()
}

/// `plain(text)` cut to [`MAX_MESSAGE`] bytes at a character boundary (with `...`).
pub fn bounded(text: &str) -> String {
    let p = plain(text);
    if p.len() <= MAX_MESSAGE {
        return p;
    }
    let mut end = MAX_MESSAGE - 3;
    while !p.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &p[..end])
}

/// `<step>: <cause>` for the first error (the one that stopped the preparation); the
/// errors after it (undo failures) are counted, not quoted.
pub fn preparation(errs: &[StepError]) -> String {
    let Some(first) = errs.first() else {
        return "preparation failed (see the sandbox's stderr)".into();
    };
    let mut m = format!("{}: {}", first.step, first.message);
    if errs.len() > 1 {
        m.push_str(&format!(
            " (and {} more errors: see the sandbox's stderr)",
            errs.len() - 1
        ));
    }
    bounded(&m)
}

/// `init: <cause> (...)` for a container whose init exited before the task ran: the
/// cause is init's last error line in the sandbox's stderr (`berth-init: ...`), else
/// the last line there that is not the executor's own.
pub fn init_failed(sandbox: &Path, describe: &str) -> String {
    let text = std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default();
    let cause = init_cause(&text);
    let m = match cause {
        Some(c) => format!("init: {c} (the container {describe} before the task ran)"),
        None => {
            format!("init: the container {describe} before the task ran (see the sandbox's stderr)")
        }
    };
    bounded(&m)
}

fn init_cause(log: &str) -> Option<String> {
    let lines: Vec<String> = log.lines().map(plain).filter(|l| !l.is_empty()).collect();
    if let Some(l) = lines.iter().rev().find(|l| l.starts_with("berth-init")) {
        let c = l
            .split_once(": ")
            .map(|(_, rest)| rest)
            .unwrap_or(l.as_str());
        return Some(c.to_string());
    }
    // The executor's log lines: `<timestamp> <LEVEL> berth_executor...`.
    let executors = |l: &str| {
        l.split_whitespace()
            .nth(2)
            .is_some_and(|t| t.starts_with("berth_executor"))
    };
    lines.iter().rev().find(|l| !executors(l)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_and_line_breaks_go() {
        assert_eq!(
            plain("\x1b[31mERROR\x1b[0m bad\r\n\tthing  here\n"),
            "ERROR bad thing here"
        );
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let m = bounded(&"é".repeat(400));
        assert!(m.len() <= MAX_MESSAGE && m.ends_with("..."), "{}", m.len());
    }

    #[test]
    fn the_first_error_comes_first_and_the_rest_are_counted() {
        let errs = vec![
            StepError::new("volume", "lvcreate: no space\nin vg0"),
            StepError::new("rundir", "cannot remove /run/x"),
        ];
        let m = preparation(&errs);
        assert_eq!(
            m,
            "volume: lvcreate: no space in vg0 (and 1 more errors: see the sandbox's stderr)"
        );
    }

    #[test]
    fn init_cause_is_inits_last_error_not_the_executors_log() {
        let log = "\x1b[2m2026-12-07T08:56:05Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mberth_executor::task\x1b[0m: starting\n\
                   berth-init: DHCP on eth0: no lease within 10s\n\
                   2026-12-07T08:56:06Z ERROR berth_executor::task::runner: container exited\n";
        assert_eq!(
            init_cause(log).as_deref(),
            Some("DHCP on eth0: no lease within 10s")
        );
        let other = "2026-12-07T08:56:06Z  INFO berth_executor::x: y\nexec format error\n";
        assert_eq!(init_cause(other).as_deref(), Some("exec format error"));
        assert_eq!(init_cause("2026 INFO berth_executor::x: y\n"), None);
    }
}
