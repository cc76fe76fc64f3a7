//! Names derived from task ids, sanitized and length-limited in one place: a task id is
//! chosen by the framework and must never reach a command line or a path unchecked.

/// Longest container id berth makes (runc accepts more; paths and cgroup names stay short).
pub const MAX_ID: usize = 64;

/// `berth-<task id>` for a task id of `[A-Za-z0-9_.-]` short enough; any other id
/// (characters replaced by `_`, or cut) gives `berth_<sanitized id, cut>-<64-bit FNV-1a
/// hash of the whole id in hex>`. The two forms cannot collide: a clean id always starts
/// `berth-`, a hashed one `berth_` (before this scheme, both were `berth-…` with a
/// 32-bit hash, and `web/1` gave the same id as `web_1-<its hash>`). Ids are derived
/// at each launch: a container started by an executor from before the change, for a
/// task id that needed the hash, is not found again by a newer executor's recovery.
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
    let id = format!("berth-{clean}");
    if id.len() <= MAX_ID && clean == task_id {
        return id;
    }
    let mut id = format!("berth_{clean}");
    // `clean` is ASCII: cutting at any byte is a char boundary.
    id.truncate(MAX_ID - 17);
    id.push_str(&format!("-{:016x}", fnv1a(task_id.as_bytes())));
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
    fn a_clean_id_never_reproduces_a_hashed_one() {
        let hashed = container_id("web/1");
        assert!(hashed.starts_with("berth_web_1-"), "{hashed}");
        assert_eq!(hashed.len(), "berth_web_1-".len() + 16);
        // The id a clean task id would need to collide: the hashed id minus its prefix.
        let forged = hashed.trim_start_matches("berth_");
        assert_ne!(container_id(forged), hashed);
        assert_ne!(container_id(&format!("_{forged}")), hashed);
        // The old 32-bit form is not reproduced either.
        let old = format!("web_1-{:08x}", fnv1a(b"web/1") as u32);
        assert_ne!(container_id(&old), hashed);
        assert_eq!(container_id("web_1"), "berth-web_1");
    }

    #[test]
    fn hostnames() {
        assert_eq!(hostname("My_App.web"), "my-app-web");
        assert_eq!(hostname("--"), "task");
        assert_eq!(hostname(&"a".repeat(100)).len(), 63);
    }
}
