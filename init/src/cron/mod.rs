//! Cron: schedules (pure) and the bookkeeping of one job's runs (no overlap, timeout).

pub mod job;
pub mod schedule;

pub use job::{CronJobState, CronTick};
pub use schedule::{Schedule, ScheduleError};
