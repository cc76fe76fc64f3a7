//! One module per subcommand. Each exposes `Args` (clap) and `run(args) -> ExitCode`.

pub mod dbauth;
pub mod gc;
pub mod lvs;
pub mod ps;
pub mod resources;
pub mod serve;
