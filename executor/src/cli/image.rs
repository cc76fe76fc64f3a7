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
}

pub fn main(args: ImageArgs) -> ExitCode {
    let ImageCommand::Inspect {
        reference,
        images,
        cache,
        unpack,
    } = args.command;
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
