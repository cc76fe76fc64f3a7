//! berth-executor: started by the Mesos agent (Marathon's `"executor"`), or by an operator
//! as `berth-executor run --task task.json`. Everything lives in the library.

fn main() -> std::process::ExitCode {
    berth_executor::cli::main()
}
