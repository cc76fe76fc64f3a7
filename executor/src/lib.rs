//! berth-executor: a Mesos v1 custom executor that runs each task as a runc container
//! with berth-init as its PID 1.
//!
//! # Layout
//! - [`mesos`]: the executor HTTP API: `MESOS_*` environment, JSON types, RecordIO, a small
//!   HTTP/1.1 client, calls/events, the update store, kill grace rules.
//! - [`session`]: the protocol session (subscribe, resubscribe, events to task actions,
//!   task events to UPDATEs, when to exit) and the [`session::Launcher`] seam.
//! - [`task`]: TaskInfo to a validated plan, preparation steps with undo and checkpoint,
//!   the OCI bundle, runc, berth-init's status socket, health checks, the task runner.
//! - [`cli`]: the command line (Mesos mode, `run --task`), used by the thin `main.rs`.
//! - [`init_check`]: the configured berth-init is a static ELF for this machine.
//! - [`image`]: task images: root filesystem directories and OCI image layouts (resolved
//!   and verified at validation, unpacked safely into a shared cache by the `image` step).
pub mod cli;
pub mod image;
pub mod init_check;
pub mod mesos;
pub mod session;
pub mod task;
