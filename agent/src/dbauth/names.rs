//! What a caller's names may be, checked before any of them reaches SQL, and the names
//! dbauth makes itself (accounts, passwords).
//!
//! App ids are Marathon's (`/group/app`, each segment lowercase letters, digits, `-`, `.`);
//! database names are plain identifiers; privileges come from a fixed list (never `ALL`,
//! `GRANT OPTION`, `SUPER`, `FILE`). Accounts are `bt_` and 24 hex digits of the task id's
//! SHA-256: 27 characters, within MySQL's 32 and MariaDB's 80, and the same for the same
//! task, so every statement about a task's account is idempotent.

use std::io::Read;

use sha2::{Digest, Sha256};

/// Prefix of every account dbauth creates (reconcile drops unknown ones with it).
pub const ACCOUNT_PREFIX: &str = "bt_";
/// The longest app id accepted.
pub const MAX_APP_ID: usize = 200;
/// MariaDB's and MySQL's limit for database names.
pub const MAX_DATABASE: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("bad app id {0:?}: expected /segment[/segment...], each of a-z 0-9 - . (at most {MAX_APP_ID} characters)")]
    AppId(String),
    #[error("bad database name {0:?}: expected 1-{MAX_DATABASE} of A-Z a-z 0-9 _, not starting with a digit")]
    Database(String),
    #[error("database {0:?} is a system schema and cannot be granted")]
    SystemDatabase(String),
    #[error("privilege {0:?} is not grantable by dbauth (allowed: {list})", list = PRIVILEGES.join(", "))]
    Privilege(String),
}

/// Privileges a grant may name, in their canonical spelling.
pub const PRIVILEGES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "INDEX",
    "ALTER",
    "REFERENCES",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "EXECUTE",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EVENT",
    "TRIGGER",
];

const SYSTEM: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// A Marathon app id, absolute (`/shop/web`).
pub fn app_id(s: &str) -> Result<(), NameError> {
    let bad = || NameError::AppId(s.to_string());
    let rest = s.strip_prefix('/').ok_or_else(bad)?;
    if s.len() > MAX_APP_ID || rest.is_empty() {
        return Err(bad());
    }
    for seg in rest.split('/') {
        let ok = !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !seg.starts_with(['-', '.'])
            && !seg.ends_with(['-', '.'])
            && seg != "."
            && !seg.contains("..");
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

/// A database name (one schema; no wildcards, quotes or dots).
pub fn database(s: &str) -> Result<(), NameError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_DATABASE
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit();
    if !ok {
        return Err(NameError::Database(s.to_string()));
    }
    if SYSTEM.iter().any(|d| d.eq_ignore_ascii_case(s)) {
        return Err(NameError::SystemDatabase(s.to_string()));
    }
    Ok(())
}

/// A privilege, case-insensitive, spaces collapsed; returns its canonical spelling.
pub fn privilege(s: &str) -> Result<&'static str, NameError> {
    let norm = s.split_whitespace().collect::<Vec<_>>().join(" ");
    PRIVILEGES
        .iter()
        .find(|p| p.eq_ignore_ascii_case(&norm))
        .copied()
        .ok_or_else(|| NameError::Privilege(s.to_string()))
}

/// The account of task `task_id`.
pub fn account(task_id: &str) -> String {
    let h = Sha256::digest(task_id.as_bytes());
    let hex: String = h.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{ACCOUNT_PREFIX}{hex}")
}

/// Whether `user` is a name [`account`] makes.
pub fn is_account(user: &str) -> bool {
    user.strip_prefix(ACCOUNT_PREFIX)
        .is_some_and(|h| h.len() == 24 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A new password: 32 characters of A-Z a-z 0-9 (about 190 bits) from the kernel's CSPRNG.
pub fn password() -> std::io::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut f = std::fs::File::open("/dev/urandom")?;
    let mut out = String::with_capacity(32);
    let mut buf = [0u8; 64];
    while out.len() < 32 {
        f.read_exact(&mut buf)?;
        // 248 = 4 * 62: rejecting bytes above it keeps every character equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() < 32 {
                out.push(char::from(ALPHABET[usize::from(*b) % 62]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_ids() {
        for ok in ["/shop", "/shop/web", "/a.b/c-d/e1"] {
            app_id(ok).unwrap();
        }
        for bad in [
            "",
            "/",
            "shop",
            "/Shop",
            "/shop/",
            "//x",
            "/a/../b",
            "/-a",
            "/a'; DROP USER root; --",
            "/a`b",
            "/a b",
            "/a\n",
        ] {
            assert!(app_id(bad).is_err(), "{bad:?}");
        }
        assert!(app_id(&format!("/{}", "a".repeat(MAX_APP_ID))).is_err());
    }

    #[test]
    fn databases() {
        for ok in ["shop", "Shop_2", "_x"] {
            database(ok).unwrap();
        }
        for bad in [
            "",
            "1x",
            "a.b",
            "a`",
            "a'",
            "a%",
            "a_*",
            "x; DROP DATABASE y",
            "a-b",
            "ä",
        ] {
            assert_eq!(
                database(bad),
                Err(NameError::Database(bad.into())),
                "{bad:?}"
            );
        }
        assert!(database(&"a".repeat(65)).is_err());
        assert!(matches!(
            database("MySQL"),
            Err(NameError::SystemDatabase(_))
        ));
    }

    #[test]
    fn privileges() {
        assert_eq!(privilege("select").unwrap(), "SELECT");
        assert_eq!(privilege(" lock   tables ").unwrap(), "LOCK TABLES");
        for bad in [
            "ALL",
            "ALL PRIVILEGES",
            "GRANT OPTION",
            "SUPER",
            "FILE",
            "SELECT,",
        ] {
            assert!(privilege(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accounts_and_passwords() {
        let a = account("shop_web.1234");
        assert_eq!(a, account("shop_web.1234"));
        assert_ne!(a, account("shop_web.1235"));
        assert!(a.len() <= 32 && is_account(&a));
        assert!(!is_account("root") && !is_account("bt_xyz"));
        let (p, q) = (password().unwrap(), password().unwrap());
        assert_eq!(p.len(), 32);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(p, q);
    }
}
