//! Database authorization (`berth-agent dbauth`; agent/DBAUTH.md): berth-init asks for
//! access to a database, dbauth checks with Marathon that the caller's TCP peer address
//! is a live task of the app it names, creates a per-task account bound to that address
//! with the configured grants, and drops it when the task ends.
//!
//! # Layout (data passes through once, top to bottom)
//! - [`names`]: what app ids, database names and privileges may be; account names and
//!   passwords.
//! - [`sql`]: the (idempotent, quoted) statements.
//! - [`config`]: `/etc/berth/dbauth.toml`, strict.
//! - [`store`]: the durable record of grants (SQLite).
//! - [`admin`]: the admin connection (mysql_async).
//! - [`tasks`]: the Marathon question behind a trait, and the matching rules.
//! - [`marathon`]: that trait over HTTP.
//! - [`authority`]: grant, revoke, sweep, reconcile; the audit lines.
//! - [`api`]: the HTTP API.
//! - [`run`]: the service loop.

pub mod admin;
pub mod api;
pub mod authority;
pub mod config;
pub mod marathon;
pub mod names;
pub mod run;
pub mod sql;
pub mod store;
pub mod tasks;
