//! `user:` / `group:` names to ids, resolved once before anything starts.

use nix::unistd::{Group, User};

/// A user or group that does not exist.
#[derive(Debug, thiserror::Error)]
#[error("{what} {name:?} does not exist in this image; valid are names from /etc/passwd and /etc/group, or numeric ids")]
pub struct UnknownId {
    /// "user" or "group".
    pub what: &'static str,
    /// As written.
    pub name: String,
}

/// (uid, gid) for `user` and `group`; the group defaults to the user's primary group.
pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<(u32, u32)>, UnknownId> {
    let Some(user) = user else {
        return match group {
            None => Ok(None),
            Some(g) => Ok(Some((nix::unistd::getuid().as_raw(), gid(g)?))),
        };
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(n) => (
            n,
            User::from_uid(n.into())
                .ok()
                .flatten()
                .map_or(n, |u| u.gid.as_raw()),
        ),
        Err(_) => match User::from_name(user).ok().flatten() {
            Some(u) => (u.uid.as_raw(), u.gid.as_raw()),
            None => {
                return Err(UnknownId {
                    what: "user",
                    name: user.into(),
                })
            }
        },
    };
    let gid = match group {
        Some(g) => gid(g)?,
        None => primary,
    };
    Ok(Some((uid, gid)))
}

fn gid(group: &str) -> Result<u32, UnknownId> {
    if let Ok(n) = group.parse::<u32>() {
        return Ok(n);
    }
    Group::from_name(group)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .ok_or_else(|| UnknownId {
            what: "group",
            name: group.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_numbers_and_unknown() {
        assert_eq!(resolve(Some("root"), None).unwrap(), Some((0, 0)));
        assert_eq!(
            resolve(Some("4242"), Some("4343")).unwrap(),
            Some((4242, 4343))
        );
        assert_eq!(resolve(None, None).unwrap(), None);
        assert!(resolve(Some("no-such-user-berth"), None)
            .unwrap_err()
            .to_string()
            .contains("does not exist"));
    }
}
