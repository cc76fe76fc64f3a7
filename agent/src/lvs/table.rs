//! The director's view of one virtual service's real servers, fed by two writers in any
//! order — berth-init's API calls and Marathon (events and periodic task listings) — and
//! the one rule that turns both into the wanted IPVS real servers.
//!
//! Reentrancy rules (per real-server IP):
//! 1. Marathon says the task is not TASK_RUNNING, or unhealthy: the real server is removed,
//!    whatever init said (init may have died by SIGKILL and never deregistered).
//! 2. init registered it (with a weight, 0 while draining): it is in with that weight.
//! 3. init deregistered it: it stays out until init registers again, even while Marathon
//!    still lists the task as running (the drain before stop must not be undone).
//! 4. init never spoke and Marathon has it running and not unhealthy (the last health
//!    result passed, or there is none yet): it is added with the service's default weight
//!    (a director restart rebuilds the table from Marathon).
//!
//! A listing that lacks an IP counts as "not running" for it, except for a registration
//! younger than the listing grace (Marathon may not list a task that just started).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// What Marathon last said about the task at an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// TASK_RUNNING; `healthy` is None while no health result exists (or the app has none).
    Running { port: u16, healthy: Option<bool> },
    /// Any other state, or absent from a listing.
    Gone,
}

/// What berth-init last said about its IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    Registered { port: u16, weight: u32, at: Instant },
    Deregistered,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    seen: Option<Seen>,
    said: Option<Said>,
}

/// The real servers of one virtual service, as both writers left them.
#[derive(Debug, Clone)]
pub struct Table {
    default_weight: u32,
    grace: Duration,
    entries: BTreeMap<IpAddr, Entry>,
}

impl Table {
    pub fn new(default_weight: u32, grace: Duration) -> Table {
        Table {
            default_weight,
            grace,
            entries: BTreeMap::new(),
        }
    }

    /// init's register or set-weight call; returns false if nothing changed (idempotent).
    pub fn register(&mut self, ip: IpAddr, port: u16, weight: u32, now: Instant) -> bool {
        let before = self.wanted_of(&self.entries.get(&ip).copied().unwrap_or_default());
        let e = self.entries.entry(ip).or_default();
        e.said = Some(Said::Registered {
            port,
            weight,
            at: now,
        });
        // A registration after Marathon saw the IP gone is a new task on a reused address.
        if e.seen == Some(Seen::Gone) {
            e.seen = None;
        }
        before != self.wanted_of(&self.entries[&ip])
    }

    /// init's deregister call (a success also when nothing was registered).
    pub fn deregister(&mut self, ip: IpAddr) {
        self.entries.entry(ip).or_default().said = Some(Said::Deregistered);
    }

    /// A Marathon status or health event for the task at `ip`.
    pub fn seen(&mut self, ip: IpAddr, seen: Seen) {
        let e = self.entries.entry(ip).or_default();
        if seen == Seen::Gone && e.said == Some(Said::Deregistered) {
            // The task is over: its tombstone has done its job.
            e.said = None;
        }
        e.seen = Some(seen);
    }

    /// A whole listing of the app's tasks: the TASK_RUNNING ones with their health.
    pub fn listing(&mut self, running: &BTreeMap<IpAddr, (u16, Option<bool>)>, now: Instant) {
        for (ip, (port, healthy)) in running {
            self.seen(
                *ip,
                Seen::Running {
                    port: *port,
                    healthy: *healthy,
                },
            );
        }
        let absent: Vec<IpAddr> = self
            .entries
            .keys()
            .filter(|ip| !running.contains_key(ip))
            .copied()
            .collect();
        for ip in absent {
            let e = self.entries[&ip];
            let fresh = matches!(e.said, Some(Said::Registered { at, .. }) if now.duration_since(at) < self.grace);
            if !fresh {
                self.seen(ip, Seen::Gone);
            }
        }
        self.entries.retain(|_, e| {
            *e != Entry {
                seen: Some(Seen::Gone),
                said: None,
            }
        });
    }

    fn wanted_of(&self, e: &Entry) -> Option<(u16, u32)> {
        match (e.seen, e.said) {
            (Some(Seen::Gone), _)
            | (
                Some(Seen::Running {
                    healthy: Some(false),
                    ..
                }),
                _,
            ) => None,
            (_, Some(Said::Registered { port, weight, .. })) => Some((port, weight)),
            (_, Some(Said::Deregistered)) => None,
            (Some(Seen::Running { port, healthy: _ }), None) => Some((port, self.default_weight)),
            (None, None) => None,
        }
    }

    /// Whether `ip` is registered by init (the API answers 404 on nothing else).
    pub fn said(&self, ip: IpAddr) -> Option<Said> {
        self.entries.get(&ip).and_then(|e| e.said)
    }

    /// The wanted real servers: IP -> (port, weight).
    pub fn wanted(&self) -> BTreeMap<IpAddr, (u16, u32)> {
        self.entries
            .iter()
            .filter_map(|(ip, e)| self.wanted_of(e).map(|w| (*ip, w)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn t() -> Table {
        Table::new(1, Duration::from_secs(30))
    }

    fn running(ips: &[u8], healthy: Option<bool>) -> BTreeMap<IpAddr, (u16, Option<bool>)> {
        ips.iter().map(|i| (ip(*i), (8080, healthy))).collect()
    }

    #[test]
    fn sigkilled_init_leaves_on_the_event() {
        let now = Instant::now();
        let mut t = t();
        t.register(ip(1), 8080, 5, now);
        t.seen(
            ip(1),
            Seen::Running {
                port: 8080,
                healthy: Some(true),
            },
        );
        assert_eq!(t.wanted(), [(ip(1), (8080, 5))].into());
        t.seen(ip(1), Seen::Gone); // TASK_KILLED / TASK_FAILED
        assert!(t.wanted().is_empty());
    }

    #[test]
    fn unhealthy_leaves_even_if_registered() {
        let mut t = t();
        t.register(ip(1), 8080, 5, Instant::now());
        t.seen(
            ip(1),
            Seen::Running {
                port: 8080,
                healthy: Some(false),
            },
        );
        assert!(t.wanted().is_empty());
        t.seen(
            ip(1),
            Seen::Running {
                port: 8080,
                healthy: Some(true),
            },
        );
        assert_eq!(t.wanted(), [(ip(1), (8080, 5))].into());
    }

    #[test]
    fn marathon_alone_rebuilds() {
        let mut t = t();
        t.listing(&running(&[1, 2], Some(true)), Instant::now());
        t.seen(
            ip(3),
            Seen::Running {
                port: 8080,
                healthy: None,
            },
        );
        assert_eq!(
            t.wanted(),
            [(ip(1), (8080, 1)), (ip(2), (8080, 1)), (ip(3), (8080, 1))].into()
        );
    }

    #[test]
    fn drain_and_deregister_are_not_undone_by_marathon() {
        let now = Instant::now();
        let mut t = t();
        t.listing(&running(&[1], Some(true)), now);
        t.register(ip(1), 8080, 1, now);
        t.register(ip(1), 8080, 0, now); // drain
        t.listing(&running(&[1], Some(true)), now);
        assert_eq!(t.wanted(), [(ip(1), (8080, 0))].into());
        t.deregister(ip(1));
        t.listing(&running(&[1], Some(true)), now);
        assert!(
            t.wanted().is_empty(),
            "still listed running, but init said it left"
        );
        // The task ends; a new task on the same address registers again.
        t.seen(ip(1), Seen::Gone);
        assert!(t.register(ip(1), 8080, 2, now));
        assert_eq!(t.wanted(), [(ip(1), (8080, 2))].into());
    }

    #[test]
    fn listing_respects_the_grace_of_fresh_registrations() {
        let now = Instant::now();
        let mut t = t();
        t.register(ip(1), 8080, 1, now);
        t.register(ip(2), 8080, 1, now - Duration::from_secs(60));
        t.listing(&BTreeMap::new(), now);
        assert_eq!(t.wanted(), [(ip(1), (8080, 1))].into());
    }

    #[test]
    fn any_order_ends_the_same() {
        // Events of a task's life, applied in every order that keeps Marathon's own order.
        let now = Instant::now();
        let reg = |t: &mut Table| {
            t.register(ip(1), 8080, 3, now);
        };
        let up = |t: &mut Table| {
            t.seen(
                ip(1),
                Seen::Running {
                    port: 8080,
                    healthy: Some(true),
                },
            )
        };
        let mut a = t();
        reg(&mut a);
        up(&mut a);
        let mut b = t();
        up(&mut b);
        reg(&mut b);
        assert_eq!(a.wanted(), b.wanted());
        assert!(
            !a.register(ip(1), 8080, 3, now),
            "registering twice changes nothing"
        );
        a.seen(ip(1), Seen::Gone);
        b.deregister(ip(1));
        b.seen(ip(1), Seen::Gone);
        assert_eq!(a.wanted(), b.wanted());
        assert!(a.wanted().is_empty());
    }
}
