//! `berth-vol`: command line to berth's volume backends (see `berth_lvm::cli`).

use clap::Parser;

fn main() {
    tracing_subscriber_init();
    let cli = berth_lvm::cli::Cli::parse();
    match berth_lvm::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(&format!(": {s}"));
                src = s.source();
            }
            eprintln!("berth-vol: {msg}");
            std::process::exit(2);
        }
    }
}

fn tracing_subscriber_init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}
