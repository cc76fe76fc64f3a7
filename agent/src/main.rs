//! berth-agent: not built yet. It exits non-zero so nothing mistakes it for a working agent.

fn main() -> std::process::ExitCode {
    eprintln!("berth-agent: not implemented yet (see the issue tracker); refusing to run");
    std::process::ExitCode::from(1)
}
