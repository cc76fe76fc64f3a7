//! One module per subcommand. Each exposes `Args` (clap) and `run(args) -> ExitCode`.

pub mod dbauth;
pub mod gc;
pub mod lvs;
pub mod ps;
pub mod resources;
pub mod serve;

/// A role that is not built yet: say so and fail, rather than pretend to work.
pub(crate) fn not_built(role: &str) -> std::process::ExitCode {
    eprintln!("berth-agent {role}: not implemented yet; refusing to run");
    std::process::ExitCode::from(1)
}
