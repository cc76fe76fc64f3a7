//! Idempotent teardown of a container's network: delete berth's links inside its netns
//! (eth0, ifb), then the netns pin. Absent is success; every step runs even when an
//! earlier one failed, and all failures are returned together (netavark's
//! `NetavarkErrorList` shape).

use std::fmt;
use std::path::Path;

use super::LinkError;
use crate::conn::{alias_of, all_links, connect, errno, name_of};
use crate::names::{NetnsName, ALIAS_PREFIX};
use crate::netns::{self, run_in, Netns};

/// Every error one teardown met.
#[derive(Debug, thiserror::Error)]
pub struct TeardownErrors(pub Vec<LinkError>);

impl fmt::Display for TeardownErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "teardown failed in {} step(s): ", self.0.len())?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
            let mut src = std::error::Error::source(e);
            while let Some(s) = src {
                write!(f, ": {s}")?;
                src = s.source();
            }
        }
        Ok(())
    }
}

/// Delete every link with a `berth:` alias in the netns the handle belongs to.
pub async fn delete_berth_links(h: &rtnetlink::Handle) -> Vec<LinkError> {
    let mut errs = Vec::new();
    let links = match all_links(h).await {
        Ok(l) => l,
        Err(err) => {
            errs.push(LinkError::Netlink {
                what: "list links in",
                name: "netns".into(),
                err,
            });
            return errs;
        }
    };
    for l in links {
        if !alias_of(&l).is_some_and(|a| a.starts_with(ALIAS_PREFIX)) {
            continue;
        }
        let name = name_of(&l).unwrap_or("?").to_string();
        if let Err(err) = h.link().del(l.header.index).execute().await {
            if errno(&err) != Some(libc::ENODEV) {
                errs.push(LinkError::Netlink {
                    what: "delete link",
                    name,
                    err,
                });
            }
        }
    }
    errs
}

/// Tear down the container network pinned at `run_dir/name`.
pub async fn teardown_container(run_dir: &Path, name: &NetnsName) -> Result<(), TeardownErrors> {
    let mut errs = Vec::new();
    let path = run_dir.join(name.as_str());
    if path.exists() {
        match Netns::open(&path) {
            Ok(ns) => {
                let r = run_in(&ns, || async {
                    match connect() {
                        Ok(h) => delete_berth_links(&h).await,
                        Err(e) => vec![LinkError::Connect(e)],
                    }
                })
                .await;
                match r {
                    Ok(mut e) => errs.append(&mut e),
                    // A pin file without a mount (a crash between creating the file and
                    // bind-mounting the netns) is no netns: nothing to delete inside.
                    Err(e) if e.is_not_a_netns() => {
                        tracing::debug!(error = %e, "netns pin is not a netns, removing it")
                    }
                    Err(e) => errs.push(e.into()),
                }
            }
            Err(e) => errs.push(e.into()),
        }
    }
    if let Err(e) = netns::delete(run_dir, name) {
        errs.push(e.into());
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(TeardownErrors(errs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_errors_are_reported_with_their_causes() {
        let e = TeardownErrors(vec![
            LinkError::NoParent {
                parent: "eth9".into(),
            },
            LinkError::Io {
                what: "remove",
                path: "/run/netns/x".into(),
                err: std::io::Error::from_raw_os_error(libc::EBUSY),
            },
        ]);
        let s = e.to_string();
        assert!(
            s.starts_with("teardown failed in 2 step(s): parent interface eth9 does not exist; "),
            "{s}"
        );
        assert!(
            s.contains("failed to remove /run/netns/x: Device or resource busy"),
            "{s}"
        );
    }
}
