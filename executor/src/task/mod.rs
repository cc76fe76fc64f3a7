//! Tasks as containers: validation, preparation steps, the OCI bundle, runc, berth-init's
//! status socket, health checks, and the runner that ties them into task events.
//!
//! The files are layers a task's data passes through once; each imports only layers below
//! it (`layers.rs` checks there is no import circle):
//!
//! 1. Leaves (import nothing of `task`): `error` (the [`PlanError`](error::PlanError) every
//!    layer may fail with), `lock` (the task lock GC respects), `names` (container ids and hostnames from task ids), `seccomp`,
//!    `runc` (the runtime commands), `init_client` (berth-init's status socket), `health`
//!    (health checks and their Mesos rules).
//! 2. Validated input, the executor's settings: `config` (`BERTH_EXECUTOR_*`), with
//!    `config/volume` (the volume settings, checked with a task's size), `config/disk`,
//!    `config/net`, `config/hardening`.
//! 3. The pure plan: `plan` (TaskInfo + config -> a validated `Plan`; errors name the field).
//! 4. What the steps share: `bundle` (the OCI `config.json`), `steps` (the `Step` trait, the
//!    checkpoint, prepare/undo), `probe` (running a health check).
//! 5. The steps, acting on the host: `taskvol` (a task volume of a kind), then `scratch`
//!    (the task's `disk`), `volume` (the sized `/home`), `network` (netns, macvlan eth0, VLAN,
//!    tc limits), `appspec` (the app spec of a plain command), `builtin` (run dir, overlay
//!    root filesystem, bundle, container).
//! 6. The runner: `runner` (one task's life, as a `Launcher` for the session).

pub mod builtin;
pub mod bundle;
pub mod config;
pub mod error;
pub mod health;
pub mod init_client;
pub mod lock;
pub mod names;
pub mod network;
pub mod plan;
pub mod probe;
pub mod runc;
pub mod runner;
pub mod seccomp;
pub mod steps;
pub mod volume;

/// `appspec`: the app spec (one service running `/bin/sh -c CMD`) generated for a plain
/// command, and the step that writes it into the run dir.
pub mod appspec;

// `scratch`: the task's `disk` enforced (the overlay's upper dir on a volume of that size;
// the first step when there is one, before `volume`). A plain comment: an outer doc here
// would make rustdoc resolve the module's own doc links in this scope.
pub mod scratch;

// `rootsnap`: thin snapshot roots (BERTH_EXECUTOR_VOLUME_ROOT=snapshot), for the `rootfs` step.
pub mod rootsnap;

/// `taskvol`: what the volume and scratch steps share (a task volume of a kind: create,
/// mount, undo, the step for unusable settings).
pub mod taskvol;

#[cfg(test)]
mod layers;
