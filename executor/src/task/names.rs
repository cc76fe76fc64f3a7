//! Names derived from task ids, sanitized and length-limited in one place: a task id is
//! chosen by the framework and must never reach a command line or a path unchecked.

/// Longest container id berth makes (runc accepts more; paths and cgroup names stay short).
pub const MAX_ID: usize = 64;

/// `berth-<task id>` with every character outside `[A-Za-z0-9_.-]` replaced by `_`; ids too
/// long are cut and suffixed with a hash of the whole id so distinct tasks stay distinct.
pub fn container_id(task_id: &str) -> String {
    let clean: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut id = format!("berth-{clean}");
    // Never "." or ".." path components, never a leading dot after the prefix issue.
    if id.len() > MAX_ID || clean != task_id {
        let hash = fnv1a(task_id.as_bytes());
        id.truncate(MAX_ID - 9);
        id.push_str(&format!("-{:08x}", hash as u32));
    }
    id
}

/// A hostname (RFC 1123 label, at most 63 characters) from a task or app name.
pub fn hostname(name: &str) -> String {
    let mut h: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    h.truncate(63);
    let h = h.trim_matches('-').to_string();
    if h.is_empty() {
        "task".into()
    } else {
        h
    }
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_safe_and_distinct() {
        assert_eq!(container_id("web.4f2a-11"), "berth-web.4f2a-11");
        let a = container_id("a/b");
        let b = container_id("a_b");
        assert_ne!(a, b, "sanitizing must not merge ids");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
        let long = container_id(&"x".repeat(300));
        assert_eq!(long.len(), MAX_ID);
        assert_ne!(long, container_id(&"x".repeat(301)));
        assert!(!container_id("../../etc").contains('/'));
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("My_App.web"), "my-app-web");
        assert_eq!(hostname("--"), "task");
        assert_eq!(hostname(&"a".repeat(100)).len(), 63);
    }
}
