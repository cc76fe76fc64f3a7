//! The `berth.home` label: a /home size for frameworks that cannot ask for berth's `home`
//! resource. Marathon's app definition has `cpus`, `mem`, `disk`, `gpus` and ports only, so
//! an app asks for its /home with `"labels": {"berth.home": "1024"}` and a `disk` that
//! covers it. /home is carved out of `disk`, which Mesos accounts: the volume gets the
//! label's MB and the writable layer the rest, so a node never hands out more than it
//! offered.

use crate::task::error::PlanError;

/// The label's key.
pub const LABEL: &str = "berth.home";
/// What `disk` must keep for the writable layer once /home is carved out (the smallest
/// ext4 berth makes is 8 MiB; a writable layer needs room for the image's changes too).
pub const MIN_REST_MB: f64 = 16.0;

/// `(home_mb, disk_mb)` once the label is applied: unchanged without it.
pub fn carve(label: Option<&str>, home_mb: f64, disk_mb: f64) -> Result<(f64, f64), PlanError> {
    let Some(text) = label else {
        return Ok((home_mb, disk_mb));
    };
    let bad = |why: String| PlanError::Label {
        key: LABEL.into(),
        why,
    };
    if home_mb > 0.0 {
        return Err(bad(format!(
            "the task also has a `home` resource ({home_mb} MB): ask for /home one way"
        )));
    }
    let t = text.trim();
    let mb: u64 = match t.parse() {
        Ok(v) if v > 0 && t.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => {
            return Err(bad(format!(
                "{text:?} is not a size: a whole number of MB above 0, e.g. \"1024\""
            )))
        }
    };
    let mb = mb as f64;
    let rest = disk_mb - mb;
    if rest < MIN_REST_MB {
        return Err(bad(format!(
            "asks for a {mb} MB /home out of resources.disk = {disk_mb} MB, which leaves \
             {rest} MB for the writable layer (at least {MIN_REST_MB}): ask for a disk of at \
             least {} MB",
            mb + MIN_REST_MB
        )));
    }
    Ok((mb, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_label_nothing_changes() {
        assert_eq!(carve(None, 64.0, 100.0).unwrap(), (64.0, 100.0));
    }

    #[test]
    fn home_is_carved_out_of_disk() {
        assert_eq!(carve(Some("1024"), 0.0, 2048.0).unwrap(), (1024.0, 1024.0));
        assert_eq!(carve(Some(" 64 "), 0.0, 80.0).unwrap(), (64.0, 16.0));
    }

    #[test]
    fn bad_labels_are_refused_naming_the_label() {
        for (v, home, disk, needle) in [
            ("64", 64.0, 200.0, "also has a `home` resource"),
            ("0", 0.0, 200.0, "not a size"),
            ("-5", 0.0, 200.0, "not a size"),
            ("1G", 0.0, 200.0, "not a size"),
            ("1e3", 0.0, 2000.0, "not a size"),
            ("+64", 0.0, 200.0, "not a size"),
            ("", 0.0, 200.0, "not a size"),
            ("64", 0.0, 0.0, "ask for a disk of at least 80 MB"),
            ("190", 0.0, 200.0, "leaves 10 MB for the writable layer"),
        ] {
            let e = carve(Some(v), home, disk).unwrap_err().to_string();
            assert!(e.starts_with("labels.berth.home: "), "{v}: {e}");
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
