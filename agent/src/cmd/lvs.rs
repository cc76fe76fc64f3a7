//! `berth-agent lvs`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::lvs::config::Config;

/// Options of `berth-agent lvs`.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs the LVS director (systemd Type=notify): owns the IPVS virtual services \
    listed in the config and nothing else, changes them by diffs, serves the real-server API \
    berth-init calls (PUT/DELETE /v1/real-servers, GET /v1/services; a caller may only change \
    its own address), and follows Marathon (/v2/events plus a full task listing every \
    reconcile_secs): a task that is not running or unhealthy leaves; a running healthy one \
    that is missing is added. Needs CAP_NET_ADMIN and the ip_vs module. Stops on SIGTERM, \
    leaving the table as it is. Exit 2: bad config (the message names the file and the key). \
    Log level: BERTH_LOG (e.g. debug)."
)]
pub struct Args {
    /// The config file (every key documented in packaging/lvs.toml).
    #[arg(long, default_value = "/etc/berth/lvs.toml")]
    pub config: PathBuf,
}

pub fn run(args: Args) -> ExitCode {
    crate::log::init();
    let fail = |code: u8, e: &dyn std::error::Error| {
        tracing::error!("{}", crate::error_chain(e));
        ExitCode::from(code)
    };
    let cfg = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => return fail(2, &e),
    };
    let marathon = match cfg
        .marathon()
        .map_err(anyhow::Error::from)
        .and_then(|m| crate::marathon::Marathon::new(m).map_err(anyhow::Error::from))
    {
        Ok(m) => m,
        Err(e) => return fail(2, e.as_ref()),
    };
    let ipvs = match berth_netcfg::ipvs::Ipvs::open() {
        Ok(h) => h,
        Err(e) => return fail(1, &e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &e),
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind(cfg.listen).await {
            Ok(l) => l,
            Err(e) => return fail(1, &e),
        };
        tracing::info!("lvs: API on {}", cfg.listen);
        let shutdown = async {
            use tokio::signal::unix::{signal, SignalKind};
            match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(mut t), Ok(mut i)) => {
                    tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} }
                }
                _ => std::future::pending().await,
            }
            tracing::info!("lvs: stopping");
        };
        match crate::lvs::run::run(
            &cfg.services,
            marathon,
            Box::new(ipvs),
            listener,
            cfg.tls.clone(),
            shutdown,
        )
        .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(2, &e),
        }
    })
}
