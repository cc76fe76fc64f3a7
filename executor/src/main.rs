fn main() -> std::process::ExitCode {
    eprintln!("berth-executor: not implemented yet");
    std::process::ExitCode::from(1)
}
