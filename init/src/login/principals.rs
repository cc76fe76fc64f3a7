//! Default principals from the Marathon app id: every path prefix, so a CA principal for a
//! team reaches all its apps. `/team/web/api` gives `team`, `team/web`, `team/web/api`.

/// The prefixes of `app_id` (leading `/` optional), or an error naming the bad part.
/// Marathon ids are segments of lowercase letters, digits, `-` and `.` (not `.`/`..`).
pub fn from_app_id(app_id: &str) -> Result<Vec<String>, String> {
    let trimmed = app_id.trim_start_matches('/');
    if trimmed.is_empty() {
        return Err(format!("MARATHON_APP_ID {app_id:?} is empty"));
    }
    let mut out = Vec::new();
    let mut acc = String::new();
    for seg in trimmed.split('/') {
        let ok = !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !ok {
            return Err(format!(
                "MARATHON_APP_ID {app_id:?}: bad segment {seg:?}; valid segments are lowercase letters, digits, '-', '.'"
            ));
        }
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(seg);
        out.push(acc.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            from_app_id("/team/web/api").unwrap(),
            vec!["team", "team/web", "team/web/api"]
        );
        assert_eq!(from_app_id("app").unwrap(), vec!["app"]);
    }

    #[test]
    fn refuses_bad_ids() {
        for bad in ["", "/", "/a//b", "/a/../b", "/A", "/a b", "/a,b", "/a\nb"] {
            assert!(from_app_id(bad).is_err(), "{bad:?}");
        }
    }
}
