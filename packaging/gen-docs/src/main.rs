//! berth-gen-docs OUT_DIR: writes OUT_DIR/man/*.8 and OUT_DIR/completions/{bash,zsh,fish}/
//! for berth's binaries (see the library).

fn main() -> std::process::ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!("usage: berth-gen-docs OUT_DIR");
        return std::process::ExitCode::from(2);
    };
    match berth_gen_docs::generate(std::path::Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth-gen-docs: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
