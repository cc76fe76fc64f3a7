//! The executor's image cache over its size budget: unpacked images no task uses are
//! removed least recently used first until the cache fits. The executor's own code does it
//! (`image::budget`, under each entry's unpack lock, so never an image being unpacked or
//! just found by a starting task); what counts as used is what `berth-executor image
//! prune` keeps: an entry a container checkpoint names (`outputs.image`, so a live task's
//! and a dead one's not yet collected) or that an overlay mount has as its lower layer.
//! Entries used within the grace period are kept too (a task between its image step and
//! its checkpoint).

use std::time::SystemTime;

use berth_executor::image::{budget, cache::Cache, prune};

use super::{Kind, Report, Settings};

/// MiB with one decimal.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1u64 << 20) as f64)
}

pub fn collect(s: &Settings, budget_bytes: u64, dry: bool, r: &mut Report) {
    let mut used = prune::named_by_checkpoints(&s.state_dir);
    used.extend(prune::overlay_lowers(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    ));
    let cache = Cache::new(&s.image_cache);
    match budget::evict_to_budget(&cache, &used, s.grace, budget_bytes, dry) {
        Ok(evicted) => {
            for e in evicted {
                r.add(
                    Kind::Image,
                    e.path.display().to_string(),
                    &why(&e, budget_bytes),
                    None,
                );
            }
        }
        Err(e) => r.add(
            Kind::Image,
            s.image_cache.display().to_string(),
            "the image cache is not collected",
            Some(e.to_string()),
        ),
    }
}

fn why(e: &budget::Evicted, budget_bytes: u64) -> String {
    let ago = SystemTime::now()
        .duration_since(e.last_used)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let at = e
        .last_used
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "image cache {} MB over budget {} MB: least recently used, last used {ago} s ago (unix time {at}), {} MB",
        mb(e.cache_bytes),
        mb(budget_bytes),
        mb(e.bytes),
    )
}
