//! `berth-executor image ...`: look at images as the executor sees them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::image::{self, ImageSource};
use crate::task::config::RunConfig;

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Resolve a `berth.image` value as a task would (NAME, NAME:TAG or NAME@sha256:HEX)
    /// and print, as JSON, the manifest digest, the layers, the image config and the
    /// cache entry. Reads index, manifest and config (digests verified), no layer.
    Inspect {
        /// The `berth.image` value.
        reference: String,
        /// The images directory (default: BERTH_EXECUTOR_IMAGES, else /var/lib/berth/images).
        #[arg(long)]
        images: Option<PathBuf>,
        /// The unpack cache (default: BERTH_EXECUTOR_IMAGE_CACHE, else
        /// /var/lib/berth/image-cache).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Also unpack the image into the cache now (verifying every layer), as the first
        /// task using it would.
        #[arg(long)]
        unpack: bool,
    },
    /// Remove unpacked images no task uses: entries named by no container checkpoint
    /// (`outputs.image`), lower layer of no overlay mount, and last used (unpacked or
    /// found by a starting task) longer than --min-age-secs ago; and leftovers of crashed
    /// unpacks. Prints each path removed (or, with --dry-run, that would be).
    Prune {
        /// The unpack cache (default: BERTH_EXECUTOR_IMAGE_CACHE, else
        /// /var/lib/berth/image-cache).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The executors' state dir with the containers' checkpoints (default:
        /// BERTH_EXECUTOR_STATE_DIR, else /var/lib/berth/containers).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Keep entries used within this many seconds.
        #[arg(long, default_value_t = 600)]
        min_age_secs: u64,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn main(args: ImageArgs) -> ExitCode {
    match args.command {
        ImageCommand::Inspect {
            reference,
            images,
            cache,
            unpack,
        } => inspect(reference, images, cache, unpack),
        ImageCommand::Prune {
            cache,
            state,
            min_age_secs,
            dry_run,
        } => prune(cache, state, min_age_secs, dry_run),
    }
}

fn prune(cache: Option<PathBuf>, state: Option<PathBuf>, min_age: u64, dry_run: bool) -> ExitCode {
    let cfg = RunConfig::from_env();
    let cache = image::cache::Cache::new(cache.unwrap_or(cfg.image_cache));
    let mut used = image::prune::named_by_checkpoints(&state.unwrap_or(cfg.state_dir));
    used.extend(image::prune::overlay_lowers(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default(),
    ));
    let min_age = std::time::Duration::from_secs(min_age);
    match image::prune::prune(&cache, &used, min_age, dry_run) {
        Ok(p) => {
            let verb = if dry_run { "would remove" } else { "removed" };
            for r in &p.removed {
                println!("{verb} {}", r.display());
            }
            for l in &p.locks {
                println!("{verb} {} (a lock file with no entry)", l.display());
            }
            eprintln!("{} kept (in use or used recently)", p.kept.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-executor: image prune: {e}");
            ExitCode::from(1)
        }
    }
}

fn inspect(
    reference: String,
    images: Option<PathBuf>,
    cache: Option<PathBuf>,
    unpack: bool,
) -> ExitCode {
    let cfg = RunConfig::from_env();
    let images = images.unwrap_or(cfg.images);
    let cache = cache.unwrap_or(cfg.image_cache);
    let source = match image::lookup(&images, &cache, &reference) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth-executor: {reference}: {e}");
            return ExitCode::from(1);
        }
    };
    if unpack {
        match source.prepare(&cache) {
            Ok(hit) => eprintln!(
                "{} {}",
                if hit {
                    "already in the cache:"
                } else {
                    "unpacked into"
                },
                source.lower().display()
            ),
            Err(e) => {
                eprintln!("berth-executor: {reference}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let out = match &source {
        ImageSource::Dir(d) => json!({"kind": "directory", "rootfs": d}),
        ImageSource::Oci { image, rootfs } => json!({
            "kind": "oci",
            "layout": image.layout,
            "reference": image.reference,
            "manifest": image.manifest,
            "layers": image.layers,
            "config_digest": image.config_digest,
            "platform": format!("{}/{}", image.os, image.architecture),
            "config": image.config,
            "command": image::command_line(&image.config),
            "rootfs": rootfs,
            "cached": rootfs.is_dir(),
        }),
    };
    match serde_json::to_string_pretty(&out) {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-executor: {e}");
            ExitCode::from(1)
        }
    }
}
