//! Tasks as containers: validation, preparation steps, the OCI bundle, runc, berth-init's
//! status socket, health checks, and the runner that ties them into task events.
//!
//! - `plan`: TaskInfo -> validated `Plan` (errors name the field).
//! - `names`: container ids and hostnames from task ids, sanitized in one place.
//! - `config`: the executor's own settings (`BERTH_EXECUTOR_*`).
//! - `steps`: the `Step` trait, the checkpoint, prepare/undo.
//! - `builtin`: berth's steps (run dir, overlay root filesystem, bundle, container).
//! - `network`: the network step (berth-netcfg: netns, macvlan eth0, VLAN, tc limits).
//! - `bundle`: the OCI `config.json` (oci-spec).
//! - `runc`: the runtime commands.
//! - `init_client`: berth-init's status socket.
//! - `health`, `probe`: health checks and their Mesos rules.
//! - `runner`: one task's life, as a `Launcher` for the session.
//! - `volume`: the volume step (berth-lvm: the task's sized `/home`, first of the steps).

pub mod builtin;
pub mod bundle;
pub mod config;
pub mod health;
pub mod init_client;
pub mod names;
pub mod network;
pub mod plan;
pub mod probe;
pub mod runc;
pub mod runner;
pub mod steps;
pub mod volume;

/// `appspec`: the app spec (one service running `/bin/sh -c CMD`) generated for a plain
/// command, and the step that writes it into the run dir.
pub mod appspec;

// `scratch`: the task's `disk` enforced (the overlay's upper dir on a volume of that size;
// the first step when there is one, before `volume`). A plain comment: an outer doc here
// would make rustdoc resolve the module's own doc links in this scope.
pub mod scratch;

/// `taskvol`: what the volume and scratch steps share (a task volume of a kind: create,
/// mount, undo, the step for unusable settings).
pub mod taskvol;
