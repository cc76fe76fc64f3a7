//! Volume names and owners: the one place where task-supplied strings become names that reach
//! a command line.
//!
//! A volume name is `berth-<kind>-<readable part>-<hash>`: the readable part is the task id
//! lowercased with every other character turned into `-` and cut to a length limit, and the
//! hash (8 hex digits of FNV-1a 64 over the whole id) keeps ids that sanitize alike (`a.b` and
//! `a_b`, or two long ids with one prefix) distinct. The result fits every LVM rule (allowed
//! characters, length, no leading `-`, no reserved names or suffixes) and is a safe file name.

use std::fmt;

/// Longest volume name we produce or accept (LVM allows 127 for an LV; we stay well below so
/// `/dev/<vg>/<name>` and `/dev/mapper/<vg>-<name>` stay short).
pub const MAX_NAME_LEN: usize = 64;
/// Longest readable part taken from a task id.
const READABLE_LEN: usize = 40;
/// Longest owner string (it is stored in an LV tag, limit 1024, and in a metadata file).
pub const MAX_OWNER_LEN: usize = 128;
/// Longest task id accepted.
pub const MAX_TASK_ID_LEN: usize = 1024;

/// Name prefixes and infixes LVM reserves for its own sub-volumes.
const RESERVED_PREFIXES: &[&str] = &["snapshot", "pvmove"];
const RESERVED_INFIXES: &[&str] = &[
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog", "_pmspare",
    "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_vorigin",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("volume name is empty")]
    Empty,
    #[error("volume name {name:?} is longer than {max} characters")]
    TooLong { name: String, max: usize },
    #[error("volume name {name:?} has character {ch:?}; allowed: a-z A-Z 0-9 + _ . -")]
    BadChar { name: String, ch: char },
    #[error("volume name {name:?} starts with '-'")]
    LeadingDash { name: String },
    #[error("volume name {name:?} is reserved by LVM")]
    Reserved { name: String },
    #[error("task id is empty")]
    EmptyTaskId,
    #[error("task id is longer than {max} bytes")]
    TaskIdTooLong { max: usize },
    #[error("owner {owner:?} is invalid: {why}")]
    BadOwner { owner: String, why: &'static str },
}

/// What a volume is for; part of its name so one task can have a home and a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeKind {
    /// A task's `/home`.
    Home,
    /// A container's root filesystem (a thin snapshot on LVM).
    Root,
    /// The read-only base volume of an image, that roots are snapshots of.
    Image,
}

impl VolumeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeKind::Home => "home",
            VolumeKind::Root => "root",
            VolumeKind::Image => "img",
        }
    }
}

/// A validated volume name, safe for LVM, device paths, file names and command lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VolumeName(String);

impl VolumeName {
    /// Validates a name as given (e.g. read back from LVM or typed by an operator).
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong {
                name: name.into(),
                max: MAX_NAME_LEN,
            });
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '_' | '.' | '-')))
        {
            return Err(NameError::BadChar {
                name: name.into(),
                ch,
            });
        }
        if name.starts_with('-') {
            return Err(NameError::LeadingDash { name: name.into() });
        }
        let reserved = name == "."
            || name == ".."
            || RESERVED_PREFIXES.iter().any(|p| name.starts_with(p))
            || RESERVED_INFIXES.iter().any(|i| name.contains(i));
        if reserved {
            return Err(NameError::Reserved { name: name.into() });
        }
        Ok(VolumeName(name.to_string()))
    }

    /// Derives the volume name of `kind` for a task id (any string, up to 1024 bytes).
    pub fn for_task(kind: VolumeKind, task_id: &str) -> Result<Self, NameError> {
        if task_id.is_empty() {
            return Err(NameError::EmptyTaskId);
        }
        if task_id.len() > MAX_TASK_ID_LEN {
            return Err(NameError::TaskIdTooLong {
                max: MAX_TASK_ID_LEN,
            });
        }
        let mut readable = String::with_capacity(READABLE_LEN);
        for c in task_id.chars() {
            if readable.len() >= READABLE_LEN {
                break;
            }
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if c == '-' && (readable.is_empty() || readable.ends_with('-')) {
                continue;
            }
            readable.push(c);
        }
        let readable = readable.trim_end_matches('-');
        let hash = fnv1a64(task_id.as_bytes());
        let name = if readable.is_empty() {
            format!("berth-{}-{:08x}", kind.as_str(), hash as u32)
        } else {
            format!("berth-{}-{}-{:08x}", kind.as_str(), readable, hash as u32)
        };
        VolumeName::new(&name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for VolumeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who a volume belongs to (a task id, or `image:<id>` for an image base). Stored in an LV tag
/// (`berth.owner=<owner>`) or the loopfile metadata, so it is limited to characters LVM tags
/// accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner(String);

impl Owner {
    pub fn new(owner: &str) -> Result<Self, NameError> {
        let bad = |why| {
            Err(NameError::BadOwner {
                owner: owner.into(),
                why,
            })
        };
        if owner.is_empty() {
            return bad("empty");
        }
        if owner.len() > MAX_OWNER_LEN {
            return bad("longer than 128 characters");
        }
        if !owner
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '.' | '-' | ':'))
        {
            return bad("allowed characters are a-z A-Z 0-9 _ + . - :");
        }
        if owner.starts_with('-') {
            return bad("starts with '-'");
        }
        Ok(Owner(owner.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 64 bit: tiny, stable across versions and platforms (names must not change when the
/// toolchain does), good enough to separate ids that sanitize alike.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_ids_become_safe_names() {
        let n = VolumeName::for_task(VolumeKind::Home, "web.2f4d1b6e-aa01-11ee").unwrap();
        assert!(
            n.as_str().starts_with("berth-home-web-2f4d1b6e-aa01-11ee-"),
            "{n}"
        );
        assert!(n.as_str().len() <= MAX_NAME_LEN);
        let hostile = VolumeName::for_task(VolumeKind::Root, "-rf /; $(reboot) `x`").unwrap();
        assert!(
            hostile.as_str().starts_with("berth-root-rf-reboot-x-"),
            "{hostile}"
        );
        let only_junk = VolumeName::for_task(VolumeKind::Home, "///").unwrap();
        assert!(only_junk.as_str().starts_with("berth-home-") && only_junk.as_str().len() == 19);
    }

    #[test]
    fn distinct_ids_stay_distinct() {
        let a = VolumeName::for_task(VolumeKind::Home, "a.b").unwrap();
        let b = VolumeName::for_task(VolumeKind::Home, "a_b").unwrap();
        assert_ne!(a, b);
        let long = "x".repeat(300);
        let l1 = VolumeName::for_task(VolumeKind::Home, &format!("{long}1")).unwrap();
        let l2 = VolumeName::for_task(VolumeKind::Home, &format!("{long}2")).unwrap();
        assert_ne!(l1, l2);
        assert!(l1.as_str().len() <= MAX_NAME_LEN);
        assert_ne!(
            VolumeName::for_task(VolumeKind::Home, "t").unwrap(),
            VolumeName::for_task(VolumeKind::Root, "t").unwrap()
        );
    }

    #[test]
    fn names_are_stable() {
        // Changing the derivation would orphan every existing volume: pin one value.
        assert_eq!(
            VolumeName::for_task(VolumeKind::Home, "task-1")
                .unwrap()
                .as_str(),
            "berth-home-task-1-02ec4e06"
        );
    }

    #[test]
    fn validation_rejects_bad_names() {
        assert_eq!(VolumeName::new(""), Err(NameError::Empty));
        assert!(matches!(
            VolumeName::new("-x"),
            Err(NameError::LeadingDash { .. })
        ));
        assert!(matches!(
            VolumeName::new("a b"),
            Err(NameError::BadChar { ch: ' ', .. })
        ));
        assert!(matches!(
            VolumeName::new("a/b"),
            Err(NameError::BadChar { ch: '/', .. })
        ));
        assert!(matches!(
            VolumeName::new(".."),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            VolumeName::new("snapshot1"),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            VolumeName::new("x_tdata"),
            Err(NameError::Reserved { .. })
        ));
        assert!(matches!(
            VolumeName::new(&"a".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
        assert!(VolumeName::new("berth-home-x_1.2+3").is_ok());
        assert_eq!(
            VolumeName::for_task(VolumeKind::Home, ""),
            Err(NameError::EmptyTaskId)
        );
        assert!(VolumeName::for_task(VolumeKind::Home, &"a".repeat(1025)).is_err());
    }

    #[test]
    fn owners_are_tag_safe() {
        assert!(Owner::new("web.2f4d1b6e-aa01:1").is_ok());
        assert!(Owner::new("").is_err());
        assert!(Owner::new("a b").is_err());
        assert!(Owner::new("a=b").is_err());
        assert!(Owner::new("-a").is_err());
        assert!(Owner::new(&"a".repeat(129)).is_err());
    }
}
