//! What one GC run found and did: one [`Item`] per thing removed (or, with `--dry-run`,
//! that would be), with why it is garbage and the error when removing it failed.

use std::fmt;

/// The kinds of leftovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A runtime container (runc state) and its processes.
    Container,
    /// A cgroup directory of a container.
    Cgroup,
    /// A mount (overlay root, volume mount) under a state dir.
    Mount,
    /// A network namespace pin with berth's links (macvlan eth0, ifb, tc) in it.
    Netns,
    /// A VLAN sub-interface of the trunk (or one dead task's record of using it).
    Vlan,
    /// A berth-lvm volume (LV, or loop file + loop device).
    Volume,
    /// A task's run dir (berth-init's status socket, DHCP lease, app spec).
    RunDir,
    /// A container's state dir (checkpoint, bundle, overlay dirs).
    StateDir,
    /// A task lock file no state dir needs.
    LockFile,
    /// An unpacked image in the executor's cache (over its budget, used by no task).
    Image,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::Container,
        Kind::Cgroup,
        Kind::Mount,
        Kind::Netns,
        Kind::Vlan,
        Kind::Volume,
        Kind::RunDir,
        Kind::StateDir,
        Kind::LockFile,
        Kind::Image,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Cgroup => "cgroup",
            Kind::Mount => "mount",
            Kind::Netns => "netns",
            Kind::Vlan => "vlan",
            Kind::Volume => "volume",
            Kind::RunDir => "rundir",
            Kind::StateDir => "statedir",
            Kind::LockFile => "lockfile",
            Kind::Image => "image",
        }
    }
}

/// One leftover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub kind: Kind,
    /// The container id, path or volume name.
    pub name: String,
    /// Why it is garbage.
    pub why: String,
    /// Set when removing it failed.
    pub error: Option<String>,
}

/// One GC run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub dry_run: bool,
    pub items: Vec<Item>,
    /// Containers skipped because their executor holds the task lock.
    pub live: usize,
    /// Leftovers skipped because they are younger than the grace period.
    pub young: usize,
}

impl Report {
    pub fn add(&mut self, kind: Kind, name: impl Into<String>, why: &str, error: Option<String>) {
        self.items.push(Item {
            kind,
            name: name.into(),
            why: why.to_string(),
            error,
        });
    }

    /// Items removed (or to be removed) without error, of `kind`.
    pub fn removed(&self, kind: Kind) -> usize {
        self.items
            .iter()
            .filter(|i| i.kind == kind && i.error.is_none())
            .count()
    }

    pub fn errors(&self) -> usize {
        self.items.iter().filter(|i| i.error.is_some()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for i in &self.items {
            match &i.error {
                None => writeln!(f, "{verb} {} {}: {}", i.kind.as_str(), i.name, i.why)?,
                Some(e) => writeln!(
                    f,
                    "FAILED to remove {} {}: {} ({})",
                    i.kind.as_str(),
                    i.name,
                    e,
                    i.why
                )?,
            }
        }
        let n = self.items.len() - self.errors();
        writeln!(
            f,
            "{verb} {n} item(s), {} failure(s); {} live container(s) left alone, {} leftover(s) younger than the grace period",
            self.errors(),
            self.live,
            self.young
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_what_why_and_what_failed() {
        let mut r = Report {
            dry_run: true,
            live: 2,
            ..Report::default()
        };
        r.add(
            Kind::Netns,
            "berth-a-1",
            "task a: its executor is gone",
            None,
        );
        r.add(
            Kind::Volume,
            "berth-home-a",
            "task a: x",
            Some("busy".into()),
        );
        let s = r.to_string();
        assert!(
            s.contains("would remove netns berth-a-1: task a: its executor is gone\n"),
            "{s}"
        );
        assert!(
            s.contains("FAILED to remove volume berth-home-a: busy (task a: x)"),
            "{s}"
        );
        assert!(
            s.contains("would remove 1 item(s), 1 failure(s); 2 live"),
            "{s}"
        );
        assert_eq!((r.removed(Kind::Netns), r.removed(Kind::Volume)), (1, 0));
    }
}
