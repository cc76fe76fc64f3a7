//! Firing cron jobs: one run at a time per job, killed at its timeout.

use nix::sys::signal::Signal;
use tracing::{info, warn};

use super::engine::{Engine, Owner};
use super::os::{Launch, Os};
use crate::cron::CronTick;
use crate::spec::LogSpec;

impl<O: Os> Engine<O> {
    pub(super) fn tick_cron(&mut self, wall_now: f64) {
        for j in 0..self.crons.len() {
            match self.crons[j].state.tick(wall_now) {
                CronTick::Idle => {}
                CronTick::SkippedOverlap => {
                    warn!(job = %self.crons[j].spec.name, "previous run still going: this run is skipped")
                }
                CronTick::Timeout => {
                    warn!(job = %self.crons[j].spec.name, "cron run timed out: killing its group");
                    if let Some(pid) = self.crons[j].pid {
                        self.os.signal_group(pid, Signal::SIGKILL);
                    }
                }
                CronTick::Start => {
                    let c = &self.crons[j];
                    let launch = Launch {
                        argv: c.spec.command.0.clone(),
                        env: self.base_env().to_vec(),
                        cwd: None,
                        ids: c.ids,
                        log: LogSpec::Inherit,
                        label: format!("cron {}", c.spec.name),
                        keep_caps: None,
                    };
                    info!(job = %c.spec.name, "cron run starting");
                    if let Some(pid) = self.spawn_owned(&launch, Owner::Cron(j)) {
                        self.crons[j].pid = Some(pid);
                        self.crons[j].state.started(wall_now);
                    }
                }
            }
        }
    }
}
