//! VLAN sub-interfaces no live task uses. netcfg records each user of a sub-interface
//! (`<trunk>.<vid>` with berth's alias) as a file under `<berth run dir>/vlan/<link>/`,
//! and the last user to leave deletes the link; an executor killed before its teardown
//! leaves its record behind, and with it the link.
//!
//! A user is live while a container of the state dir claims its task id (its task lock
//! held, or its state dir not collected yet: [`super::dead`] drops a dead container's use
//! with [`release_task`]). A link whose users are all gone goes once its records are older
//! than the grace period; one some live task still uses only loses the dead users' records.
//! Removal is netcfg's [`collect_vlan`], under the link's lock, which asks again under it:
//! a task acquiring the link meanwhile waits for the lock and is seen as a user.

use std::path::PathBuf;
use std::time::Duration;

use berth_netcfg::conn::Handle;
use berth_netcfg::link::vlan::{collect_vlan, list_vlans, VlanLink};

use super::report::{Kind, Report};
use super::scan::{age_of, Claims};
use super::Settings;

/// What to do with one sub-interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every recorded user is live.
    Keep,
    /// Some user is gone, but a setup touched it within the grace period.
    Young,
    /// Live users remain: only the records of these (gone) ones go.
    DropUses(Vec<String>),
    /// No live user: the link goes.
    Remove,
}

/// The verdict for a link with `owners`, last touched `age` ago.
pub fn decide(
    owners: &[String],
    age: Duration,
    grace: Duration,
    is_live: &dyn Fn(&str) -> bool,
) -> Verdict {
    let gone: Vec<String> = owners.iter().filter(|o| !is_live(o)).cloned().collect();
    if !owners.is_empty() && gone.is_empty() {
        Verdict::Keep
    } else if age < grace {
        Verdict::Young
    } else if gone.len() < owners.len() {
        Verdict::DropUses(gone)
    } else {
        Verdict::Remove
    }
}

/// How long ago a setup last touched the link's records. None at all: as old as can be
/// (a setup makes the lock file before the link, so no setup is making this one).
pub fn age(records: &[PathBuf]) -> Duration {
    if records.is_empty() {
        Duration::MAX
    } else {
        age_of(records)
    }
}

async fn links(s: &Settings, r: &mut Report, why: &str) -> Option<(Handle, Vec<VlanLink>)> {
    let listed = match berth_netcfg::conn::connect() {
        Ok(h) => list_vlans(&h, &s.berth_run_dir)
            .await
            .map(|l| (h, l))
            .map_err(|e| crate::error_chain(&e)),
        Err(e) => Err(format!("netlink: {e}")),
    };
    match listed {
        Ok(l) => Some(l),
        Err(e) => {
            r.add(Kind::Vlan, "(listing)", why, Some(e));
            None
        }
    }
}

fn last_why(why: &str) -> String {
    format!("{why}; it was the last user of the VLAN sub-interface")
}

fn use_of(link: &VlanLink, task_id: &str) -> String {
    format!("{} (use by task {task_id})", link.name)
}

/// Drops the dead task `task_id`'s use of any sub-interface (the link too, if it was the
/// last user); `why` is the dead container's reason.
pub async fn release_task(s: &Settings, task_id: &str, why: &str, dry: bool, r: &mut Report) {
    let Some((h, listed)) = links(s, r, why).await else {
        return;
    };
    for l in listed
        .iter()
        .filter(|l| l.owners.iter().any(|o| o == task_id))
    {
        let last = l.owners.len() == 1;
        if dry {
            if last {
                r.add(Kind::Vlan, l.name.as_str(), &last_why(why), None);
            } else {
                r.add(Kind::Vlan, use_of(l, task_id), why, None);
            }
            continue;
        }
        match collect_vlan(&h, &s.berth_run_dir, &l.name, &mut |o| o != task_id).await {
            Ok(c) if c.deleted => r.add(Kind::Vlan, l.name.as_str(), &last_why(why), None),
            Ok(_) => r.add(Kind::Vlan, use_of(l, task_id), why, None),
            Err(e) => r.add(
                Kind::Vlan,
                l.name.as_str(),
                why,
                Some(crate::error_chain(&e)),
            ),
        }
    }
}

const WHY: &str = "no live task uses it (each recorded user's task is gone)";

/// Every sub-interface whose users are gone (`sweep_unowned`).
pub async fn sweep(s: &Settings, dry: bool, r: &mut Report) {
    let Some((h, listed)) = links(s, r, WHY).await else {
        return;
    };
    // A user is live while a container claims it; unreadable claims: everyone is live.
    let claims = || Claims::read(&s.state_dir).ok();
    let live_in = |c: &Option<Claims>, o: &str| c.as_ref().is_none_or(|c| c.owners.contains(o));
    let now = claims();
    let is_live = |o: &str| live_in(&now, o);
    for l in listed {
        let why = |gone: &[String]| {
            if gone.is_empty() {
                "berth's VLAN sub-interface, no user recorded".to_string()
            } else {
                format!("{WHY}: {}", gone.join(", "))
            }
        };
        match decide(&l.owners, age(&l.records), s.grace, &is_live) {
            Verdict::Keep => {}
            Verdict::Young => r.young += 1,
            Verdict::DropUses(gone) if dry => {
                for g in &gone {
                    r.add(
                        Kind::Vlan,
                        use_of(&l, g),
                        &why(std::slice::from_ref(g)),
                        None,
                    );
                }
            }
            Verdict::Remove if dry => r.add(Kind::Vlan, l.name.as_str(), &why(&l.owners), None),
            // Asked again under the link's lock: the claims read there, once per link (a
            // task acquiring the link meanwhile has its state dir by then).
            _ => match collect_vlan(&h, &s.berth_run_dir, &l.name, &mut {
                let mut fresh = None;
                move |o| live_in(fresh.get_or_insert_with(claims), o)
            })
            .await
            {
                Ok(c) => {
                    if c.deleted {
                        r.add(Kind::Vlan, l.name.as_str(), &why(&c.dropped), None);
                    } else {
                        for g in &c.dropped {
                            r.add(
                                Kind::Vlan,
                                use_of(&l, g),
                                &why(std::slice::from_ref(g)),
                                None,
                            );
                        }
                    }
                }
                Err(e) => r.add(
                    Kind::Vlan,
                    l.name.as_str(),
                    WHY,
                    Some(crate::error_chain(&e)),
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(60);
    const OLD: Duration = Duration::from_secs(61);

    fn owners(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_link_goes_only_when_no_live_task_uses_it_and_it_is_old() {
        let live = |o: &str| o.starts_with("live");
        // A live user keeps it, whatever its age.
        assert_eq!(
            decide(&owners(&["live.1"]), Duration::MAX, GRACE, &live),
            Verdict::Keep
        );
        // Dead users only, touched within the grace: spared.
        assert_eq!(
            decide(&owners(&["dead.1"]), Duration::from_secs(5), GRACE, &live),
            Verdict::Young
        );
        assert_eq!(
            decide(&owners(&["dead.1"]), OLD, GRACE, &live),
            Verdict::Remove
        );
        // No user recorded: the same rules (a setup makes its records first).
        assert_eq!(decide(&[], Duration::ZERO, GRACE, &live), Verdict::Young);
        assert_eq!(decide(&[], OLD, GRACE, &live), Verdict::Remove);
        // Live and dead users: only the dead ones' records go.
        assert_eq!(
            decide(&owners(&["dead.1", "live.1", "dead.2"]), OLD, GRACE, &live),
            Verdict::DropUses(owners(&["dead.1", "dead.2"]))
        );
        assert_eq!(
            decide(&owners(&["dead.1", "live.1"]), Duration::ZERO, GRACE, &live),
            Verdict::Young
        );
    }

    #[test]
    fn the_age_is_the_newest_record_and_no_record_is_old() {
        assert_eq!(age(&[]), Duration::MAX);
        let d = tempfile::tempdir().unwrap();
        let (old, new) = (d.path().join("old"), d.path().join("new"));
        std::fs::write(&old, "").unwrap();
        std::fs::write(&new, "").unwrap();
        let t = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::open(&old).unwrap().set_modified(t).unwrap();
        assert!(age(std::slice::from_ref(&old)) >= Duration::from_secs(3599));
        assert!(age(&[old, new]) < Duration::from_secs(60));
    }

    #[test]
    fn a_dead_users_record_is_found_by_its_task_id() {
        // The records netcfg writes, as GC reads them back.
        let d = tempfile::tempdir().unwrap();
        let link = berth_netcfg::names::IfName::new("eth1.42").unwrap();
        let dir = d.path().join("vlan").join("eth1.42");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("0000000000000001"), "dead.task").unwrap();
        std::fs::write(dir.join("0000000000000002"), "live.task").unwrap();
        let (o, rec) = berth_netcfg::link::vlan::users_of(d.path(), &link);
        assert_eq!(o, owners(&["dead.task", "live.task"]));
        let live = |o: &str| o == "live.task";
        assert_eq!(
            decide(&o, age(&rec), Duration::ZERO, &live),
            Verdict::DropUses(owners(&["dead.task"]))
        );
    }
}
